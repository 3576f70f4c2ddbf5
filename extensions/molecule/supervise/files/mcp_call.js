// A minimal MCP client over Streamable HTTP (JSON-RPC 2.0), no LLM: what the tests run inside the
// agent to call supervise's tools as Claude Code would.
//   node mcp_call.js URL TOOL 'JSON arguments'   -> prints the tool's result (parsed JSON) on stdout
//   node mcp_call.js URL --raw 'JSON-RPC body'   -> prints the HTTP status and the raw answer
// Node 20's fetch does not use HTTP(S)_PROXY: the request goes straight to the bundle.
'use strict';
const [url, tool, arg] = process.argv.slice(2);
const headers = {'Content-Type': 'application/json', 'Accept': 'application/json, text/event-stream'};

async function post(body) {
  const res = await fetch(url, {method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body)});
  const text = await res.text();
  // A server may answer as an SSE stream: take the last data line.
  const data = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).pop();
  return {status: res.status, text: data !== undefined ? data : text, session: res.headers.get('mcp-session-id')};
}

async function main() {
  if (tool === '--raw') {
    const r = await post(arg);
    console.log(JSON.stringify({status: r.status, body: r.text}));
    return;
  }
  const init = await post({jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'bottle-test', version: '1'}}});
  if (init.status !== 200) throw new Error('initialize: HTTP ' + init.status + ' ' + init.text);
  if (init.session) headers['Mcp-Session-Id'] = init.session;
  await post({jsonrpc: '2.0', method: 'notifications/initialized'});
  const call = await post({jsonrpc: '2.0', id: 2, method: 'tools/call', params: {name: tool, arguments: JSON.parse(arg || '{}')}});
  const msg = JSON.parse(call.text);
  if (msg.error) throw new Error('tools/call: ' + JSON.stringify(msg.error));
  const content = (msg.result.content || []).map((c) => c.text).join('');
  let result;
  try { result = JSON.parse(content); } catch (e) { result = {text: content}; }
  if (msg.result.isError) result = {is_error: true, text: content};
  console.log(JSON.stringify(result));
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
