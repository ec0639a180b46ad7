// node:http, taken with process.getBuiltinModule rather than `import … from
// 'node:http'`. An ESM import of a built-in builds a namespace from every
// export, and reading http's lazy WebSocket, CloseEvent and MessageEvent
// getters loads Node's bundled fetch client: about 13 MiB of resident memory
// in every proxy, for code the proxy never runs. Types still come from
// `import type … from 'node:http'`, which costs nothing at run time.

export const http = process.getBuiltinModule('node:http');
