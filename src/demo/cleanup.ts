/**
 * What the demo must undo, undone in reverse order at the end: on success, on failure, and on
 * Ctrl-C (SIGINT) or SIGTERM. Each step runs once; a failing step does not stop the others.
 */
export class Cleanup {
  private readonly steps: { label: string; fn: () => Promise<void> | void }[] = [];
  private running: Promise<string[]> | null = null;
  private signalled: NodeJS.Signals | null = null;
  private readonly onSignal = (signal: NodeJS.Signals) => this.handleSignal(signal);

  /** Registers a step; later steps run first. */
  add(label: string, fn: () => Promise<void> | void): void {
    this.steps.push({ label, fn });
  }

  /** The signal that interrupted the demo, if one did. */
  get interruptedBy(): NodeJS.Signals | null {
    return this.signalled;
  }

  /** Runs every step once, newest first; returns the labels of the steps that failed. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failed: string[] = [];
      for (const step of this.steps.reverse()) {
        try {
          await step.fn();
        } catch {
          failed.push(step.label);
        }
      }
      this.steps.length = 0;
      return failed;
    })();
    return this.running;
  }

  /** Ctrl-C and SIGTERM clean up, then end the process (another Ctrl-C later ends it at once). */
  catchSignals(say: (line: string) => void): void {
    this.say = say;
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  releaseSignals(): void {
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }

  private say: (line: string) => void = () => undefined;
  private signalledAt = 0;

  private handleSignal(signal: NodeJS.Signals): void {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (this.signalled) {
      // A Ctrl-C reaches the demo twice (from the terminal and relayed by tsx): only a second
      // one pressed later means "stop now".
      if (Date.now() - this.signalledAt > 2_000) process.exit(code);
      return;
    }
    this.signalled = signal;
    this.signalledAt = Date.now();
    this.say(`Interrupted (${signal}); removing what the demo made.`);
    void this.run().finally(() => process.exit(code));
  }
}
