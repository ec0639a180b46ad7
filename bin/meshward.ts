#!/usr/bin/env node
// The `meshward` command. Everything lives in src/cli; this file only starts it.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
