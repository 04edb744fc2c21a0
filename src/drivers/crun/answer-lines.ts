/**
 * Splits the text of an answer stream (the spawner shell's stdout, the exec agent's answer FIFO)
 * into whole lines. The unfinished tail is kept for the next chunk, but only up to `longest`
 * characters: a longer one is not an answer and is dropped, so the buffer stays bounded.
 */
export class AnswerLines {
  private buffered = '';

  /** @param longest most characters of an unfinished line kept between chunks */
  constructor(private readonly longest: number) {}

  /**
   * Appends `text` and calls `onLine` with each whole line it completes (without its '\n'), in
   * order. A clear() from inside `onLine` drops the lines not yet handed out.
   */
  feed(text: string, onLine: (line: string) => void): void {
    this.buffered += text;
    let at = this.buffered.indexOf('\n');
    while (at >= 0) {
      const line = this.buffered.slice(0, at);
      this.buffered = this.buffered.slice(at + 1);
      onLine(line);
      at = this.buffered.indexOf('\n');
    }
    if (this.buffered.length > this.longest) this.buffered = '';
  }

  /** Forgets what is buffered: the stream it came from is gone. */
  clear(): void {
    this.buffered = '';
  }
}
