"""GET a URL with one Python HTTP library, as an application would, and print what it shows.

usage: get.py urllib|requests|httpx|aiohttp URL
Prints the body on success; on failure, the exception as the library words it (what a person
sees), and exits 1. Proxies and CA files come from the environment, as the libraries read it.
"""

import sys


def urllib_get(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


def requests_get(url):
    import requests

    response = requests.get(url, timeout=30)
    return response.status_code, response.text


def httpx_get(url):
    import httpx

    # The client is built from the environment's proxy variables here, before any request.
    with httpx.Client(timeout=30) as client:
        response = client.get(url)
        return response.status_code, response.text


def aiohttp_get(url):
    import asyncio

    import aiohttp

    async def run():
        async with aiohttp.ClientSession(trust_env=True) as session:
            async with session.get(url) as response:
                return response.status, await response.text()

    return asyncio.run(run())


def main():
    library, url = sys.argv[1], sys.argv[2]
    get = {"urllib": urllib_get, "requests": requests_get, "httpx": httpx_get, "aiohttp": aiohttp_get}
    try:
        status, body = get[library](url)
    except Exception as error:  # what the library says is the point here
        print(f"{type(error).__name__}: {error}")
        sys.exit(1)
    if status != 200:
        print(f"status {status}")
        sys.exit(1)
    sys.stdout.write(body)


main()
