// The bundle's entry point (tools/build-bundle.ts): runs this process's
// command line. bin/meshward.js starts it, or relaunches a proxy into it
// with the proxy's Node flags, once it has found the bundle up to date.

import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
