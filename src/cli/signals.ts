// Long-running commands (`ca serve`, `proxy`) stop cleanly on the first
// SIGINT or SIGTERM; the handlers come off at once, so a second signal ends
// the process the default way.

export function untilSignal(): { signalled: Promise<NodeJS.Signals>; release: () => void } {
  let release = () => {};
  const signalled = new Promise<NodeJS.Signals>((done) => {
    const onSignal = (sig: NodeJS.Signals) => {
      release();
      done(sig);
    };
    release = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return { signalled, release };
}
