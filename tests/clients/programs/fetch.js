// GET a URL with Node's global fetch and print the body, or the error and its causes as Node
// words them.
fetch(process.argv[2]).then(
  async (response) => {
    if (response.status !== 200) {
      console.log(`status ${response.status} ${response.statusText}`);
      process.exit(1);
    }
    process.stdout.write(await response.text());
  },
  (error) => {
    const words = [];
    for (let e = error; e; e = e.cause) words.push(e.message);
    console.log(words.join(": "));
    process.exit(1);
  },
);
