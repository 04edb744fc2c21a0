/**
 * Upload and download buttons for the running lease (API.md "Files"): a file picked here goes to
 * a path in the sandbox; a path there comes back as a file (a directory as a .tar archive).
 */

/** The lease the buttons act on, or undefined when none runs. */
export type LeaseOf = () => { id: string; bearer: string } | undefined;

interface FilesUi {
  path: HTMLInputElement;
  pick: HTMLInputElement;
  upload: HTMLButtonElement;
  download: HTMLButtonElement;
  status: HTMLElement;
}

function filesUrl(id: string, path: string): string {
  return `/v1/leases/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}`;
}

/** The node's error sentence, or a plain one when its answer is not the API's JSON. */
async function refusal(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { message?: unknown; error?: unknown };
    if (typeof body.message === 'string') return `${body.message} (${String(body.error)})`;
  } catch {
    // not JSON
  }
  return `the node answered ${res.status}`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Wires the buttons; `leaseOf` is asked at each click. */
export function setupFiles(ui: FilesUi, leaseOf: LeaseOf): void {
  const say = (text: string, error = false) => {
    ui.status.textContent = text;
    ui.status.classList.toggle('error', error);
  };
  const path = () => ui.path.value.trim();

  ui.upload.addEventListener('click', () => {
    if (!path().startsWith('/')) return say('Give an absolute path in the sandbox, e.g. /root/', true);
    ui.pick.value = '';
    ui.pick.click();
  });

  ui.pick.addEventListener('change', async () => {
    const lease = leaseOf();
    const file = ui.pick.files?.[0];
    if (!lease || !file) return;
    const target = path().endsWith('/') ? `${path()}${file.name}` : path();
    ui.upload.disabled = true;
    say(`Uploading ${file.name} (${size(file.size)})…`);
    try {
      // The browser streams the file and announces its length.
      const res = await fetch(filesUrl(lease.id, target), {
        method: 'PUT',
        headers: { authorization: `Bearer ${lease.bearer}`, 'content-type': 'application/octet-stream' },
        body: file,
        credentials: 'omit',
      });
      if (res.status !== 201) return say(`Upload failed: ${await refusal(res)}`, true);
      const done = (await res.json()) as { path: string; size: number };
      say(`Uploaded ${size(done.size)} to ${done.path}.`);
    } catch {
      say('Upload failed: the node could not be reached.', true);
    } finally {
      ui.upload.disabled = false;
    }
  });

  ui.download.addEventListener('click', async () => {
    const lease = leaseOf();
    if (!lease) return;
    const wanted = path();
    if (!wanted.startsWith('/'))
      return say('Give an absolute path in the sandbox, e.g. /root/notes.txt', true);
    ui.download.disabled = true;
    say(`Downloading ${wanted}…`);
    try {
      const res = await fetch(filesUrl(lease.id, wanted), {
        headers: { authorization: `Bearer ${lease.bearer}` },
        credentials: 'omit',
        cache: 'no-store',
      });
      if (res.status !== 200) return say(`Download failed: ${await refusal(res)}`, true);
      const directory = res.headers.get('content-type')?.startsWith('application/x-tar') ?? false;
      const blob = await res.blob();
      const name = wanted.replace(/\/+$/, '').split('/').pop() || 'root';
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = directory ? `${name}.tar` : name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      say(`Downloaded ${link.download} (${size(blob.size)}).`);
    } catch {
      say('Download failed: the node could not be reached or the transfer was cut off.', true);
    } finally {
      ui.download.disabled = false;
    }
  });
}
