// The README recipe for Node 20, whose fetch ignores proxy variables: load with
// `node --require ./proxy-agent.cjs` (or NODE_OPTIONS) after `npm install undici`, and every
// fetch goes to HTTP(S)_PROXY, honouring NO_PROXY.
const { setGlobalDispatcher, EnvHttpProxyAgent } = require("undici");
setGlobalDispatcher(new EnvHttpProxyAgent());
