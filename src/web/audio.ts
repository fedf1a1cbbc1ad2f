/**
 * Audio into the page: a file the user picks, or a recording (MediaRecorder). WAV and FLAC
 * bytes go on as they are (lemer's own decoder reads them, on the server and in the page
 * alike); anything else (a recording's WebM/Opus, MP3, ...) is decoded by the browser once
 * and kept as a 32-bit float WAV, so that the server and the page see the same samples.
 */

export interface PageAudio {
  /** WAV or FLAC bytes, as sent to the server and read by the in-page model. */
  bytes: Uint8Array;
  name: string;
  /** How the bytes came to be, for the page to say. */
  origin: string;
}

/** Whether lemer's decoder reads these bytes itself (RIFF/WAVE or fLaC). */
export function isWavOrFlac(b: Uint8Array): boolean {
  const tag = (o: number) => String.fromCharCode(...b.subarray(o, o + 4));
  return (tag(0) === 'RIFF' && tag(8) === 'WAVE') || tag(0) === 'fLaC';
}

/** Channels of float samples as a WAVE_FORMAT_IEEE_FLOAT file (lossless for decoded audio). */
export function floatWav(channels: Float32Array[], sampleRate: number): Uint8Array {
  const nc = channels.length;
  const frames = channels[0]?.length ?? 0;
  const dataBytes = frames * nc * 4;
  const out = new Uint8Array(44 + dataBytes);
  const v = new DataView(out.buffer);
  const ascii = (o: number, s: string) => [...s].forEach((c, i) => (out[o + i] = c.charCodeAt(0)));
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 3, true); // IEEE float
  v.setUint16(22, nc, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * nc * 4, true);
  v.setUint16(32, nc * 4, true);
  v.setUint16(34, 32, true);
  ascii(36, 'data');
  v.setUint32(40, dataBytes, true);
  for (let i = 0; i < frames; i++)
    for (let c = 0; c < nc; c++) v.setFloat32(44 + (i * nc + c) * 4, channels[c][i], true);
  return out;
}

/**
 * Decodes compressed audio with the browser, at 48 kHz (Opus's own rate, so a recording is
 * not resampled twice); lemer then resamples it to the model's rate as it does any audio.
 */
export async function decodeWithBrowser(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  const ctx = new OfflineAudioContext(1, 1, 48000);
  let buf: AudioBuffer;
  try {
    buf = await ctx.decodeAudioData(bytes.slice().buffer);
  } catch (err) {
    throw new Error(
      `${name}: neither WAV/FLAC nor a format this browser decodes (${(err as Error).message})`,
    );
  }
  const channels = Array.from({ length: buf.numberOfChannels }, (_, c) => buf.getChannelData(c));
  return floatWav(channels, buf.sampleRate);
}

/** A picked file as bytes lemer reads. */
export async function fromFile(file: File): Promise<PageAudio> {
  const raw = new Uint8Array(await file.arrayBuffer());
  if (raw.length === 0 || isWavOrFlac(raw)) return { bytes: raw, name: file.name, origin: 'file' };
  return {
    bytes: await decodeWithBrowser(raw, file.name),
    name: file.name.replace(/\.[^.]*$/, '') + '.wav',
    origin: `${file.name}, decoded by the browser`,
  };
}

/** A microphone recording in progress; stop() gives the audio. */
export interface Recording {
  stop(): Promise<PageAudio>;
}

export async function startRecording(): Promise<Recording> {
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === 'undefined')
    throw new Error(
      'this browser cannot record (no MediaRecorder or microphone access; a page needs https or localhost)',
    );
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream);
  const parts: Blob[] = [];
  recorder.ondataavailable = (e) => {
    if (e.data.size > 0) parts.push(e.data);
  };
  const stopped = new Promise<void>((resolve) => (recorder.onstop = () => resolve()));
  recorder.start();
  const started = new Date();
  return {
    async stop() {
      recorder.stop();
      await stopped;
      for (const t of stream.getTracks()) t.stop();
      const raw = new Uint8Array(await new Blob(parts, { type: recorder.mimeType }).arrayBuffer());
      const name = `recording-${started.toISOString().slice(11, 19).replace(/:/g, '')}.wav`;
      return {
        bytes: await decodeWithBrowser(raw, name),
        name,
        origin: `recording (${recorder.mimeType || 'audio'})`,
      };
    },
  };
}
