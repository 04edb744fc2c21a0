import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';

/** Output received but not yet drawn, in bytes, past which more is dropped. */
const MAX_PENDING_OUTPUT = 4 * 1024 * 1024;

export interface TerminalSession {
  close(): void;
  focus(): void;
}

/**
 * An xterm.js terminal on the lease's attach WebSocket (API.md). Browsers cannot set headers on a
 * WebSocket, so the bearer credential travels as the subprotocol `bearer.<token>`.
 */
export function attachTerminal(options: {
  container: HTMLElement;
  leaseId: string;
  bearer: string;
  onStatus: (text: string) => void;
}): TerminalSession {
  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    // At 1.0 the DOM renderer clips underscores of common monospace fonts (x86_64 read as x86 64).
    lineHeight: 1.2,
    scrollback: 2000,
    screenReaderMode: false,
    theme: { background: '#0f1419', foreground: '#e6e1cf', cursor: '#ffcc66' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  options.container.replaceChildren();
  term.open(options.container);
  // xterm's own textarea receives the keys: give it a name for screen readers.
  term.textarea?.setAttribute('aria-label', 'Sandbox terminal input');
  safeFit(fit);
  // The shell needs Tab, so the terminal keeps it; Escape then Tab (within a second) leaves the
  // terminal for the next control, so keyboard users are never trapped in it.
  let escapedAt = 0;
  term.attachCustomKeyEventHandler((event) => {
    if (event.type !== 'keydown') return true;
    if (event.key === 'Tab' && Date.now() - escapedAt < 1000) {
      event.preventDefault();
      escapedAt = 0;
      term.blur();
      options.container.parentElement?.querySelector<HTMLElement>('#extend-minutes')?.focus();
      return false;
    }
    escapedAt = event.key === 'Escape' ? Date.now() : 0;
    return true;
  });

  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/v1/leases/${encodeURIComponent(options.leaseId)}/attach`;
  const socket = new WebSocket(url, [`bearer.${options.bearer}`]);
  socket.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  let closedByUs = false;

  const sendResize = () => {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    }
  };
  socket.addEventListener('open', () => {
    options.onStatus('connected');
    sendResize();
    term.focus();
  });
  // A browser cannot stop reading a WebSocket, and the node sends as fast as the network takes
  // it: output the terminal has not drawn yet is bounded here. Past the bound it is dropped (and
  // said so once drawing caught up) rather than held, which xterm would refuse past 50 MB anyway.
  let pending = 0;
  let skipped = 0;
  const show = (data: Uint8Array | string) => {
    if (pending > MAX_PENDING_OUTPUT) {
      skipped += data.length;
      return;
    }
    if (skipped > 0) {
      term.write(`\r\n[${skipped} bytes of output skipped: the page could not keep up]\r\n`);
      skipped = 0;
    }
    pending += data.length;
    term.write(data, () => {
      pending -= data.length;
    });
  };
  socket.addEventListener('message', (event: MessageEvent) => {
    if (event.data instanceof ArrayBuffer) show(new Uint8Array(event.data));
    else if (typeof event.data === 'string') show(event.data);
  });
  socket.addEventListener('close', (event) => {
    if (closedByUs) return;
    term.write(`\r\n[connection closed${event.reason ? `: ${event.reason}` : ''}]\r\n`);
    options.onStatus('disconnected');
  });
  const typed = term.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  const resized = term.onResize(sendResize);
  const observer = new ResizeObserver(() => safeFit(fit));
  observer.observe(options.container);

  return {
    close() {
      closedByUs = true;
      observer.disconnect();
      typed.dispose();
      resized.dispose();
      socket.close(1000, 'closed by the page');
      term.dispose();
    },
    focus() {
      term.focus();
    },
  };
}

function safeFit(fit: FitAddon): void {
  // Fitting a hidden or zero-sized container throws inside xterm; the observer fits again later.
  try {
    fit.fit();
  } catch {
    /* not laid out yet */
  }
}
