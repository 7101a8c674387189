// GET a URL with Node's https (or http) module, which never reads proxy variables, and print the
// body, or the error as Node words it.
const url = process.argv[2];
require(url.startsWith("https:") ? "https" : "http")
  .get(url, (response) => {
    let body = "";
    response.on("data", (chunk) => (body += chunk));
    response.on("end", () => {
      if (response.statusCode !== 200) {
        console.log(`status ${response.statusCode}`);
        process.exit(1);
      }
      process.stdout.write(body);
    });
  })
  .on("error", (error) => {
    console.log(`${error.code}: ${error.message}`);
    process.exit(1);
  });
