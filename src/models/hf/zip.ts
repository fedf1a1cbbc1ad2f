/**
 * A small ZIP reader for torch.save archives (`pytorch_model.bin` since PyTorch 1.6): the
 * central directory (ZIP64 included) and stored or deflated entries, read by position and
 * checked against their CRC-32. Only what those archives use; nothing else of ZIP.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { HfLoadError } from './config.js';

export interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

let crcTable: Uint32Array | null = null;
export function crc32(bytes: Uint8Array): number {
  // zlib's (Node >= 20.15) is native; the table version below is the fallback.
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(bytes) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const t = crcTable;
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Is this file a ZIP archive (starts with a local file header)? */
export function isZip(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === LOCAL;
}

export class ZipReader {
  private fd: number | null;
  readonly entries: Map<string, ZipEntry>;

  private constructor(
    readonly path: string,
    fd: number,
    entries: Map<string, ZipEntry>,
  ) {
    this.fd = fd;
    this.entries = entries;
  }

  static open(path: string): ZipReader {
    const fd = openSync(path, 'r');
    try {
      return new ZipReader(path, fd, readCentralDirectory(fd, path));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new HfLoadError(`${this.path}: the archive has no entry '${name}'`);
    if (this.fd === null) throw new HfLoadError(`${this.path}: archive is closed`);
    const local = readAt(this.fd, e.localHeaderOffset, 30, this.path);
    const dv = view(local);
    if (dv.getUint32(0, true) !== LOCAL)
      throw new HfLoadError(`${this.path}: corrupt archive: entry '${name}' has no local header`);
    const start = e.localHeaderOffset + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
    const raw = readAt(this.fd, start, e.compressedSize, this.path);
    let data: Uint8Array;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        data = new Uint8Array(zlib.inflateRawSync(raw));
      } catch (err) {
        throw new HfLoadError(`${this.path}: corrupt archive entry '${name}': ${(err as Error).message}`);
      }
    } else throw new HfLoadError(`${this.path}: entry '${name}' uses ZIP compression method ${e.method}`);
    if (data.length !== e.size || crc32(data) !== e.crc)
      throw new HfLoadError(`${this.path}: corrupt archive: entry '${name}' fails its CRC-32 check`);
    return data;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function readAt(fd: number, position: number, length: number, path: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new HfLoadError(`${path}: truncated archive (ended ${length - done} bytes early)`);
    done += n;
  }
  return out;
}

function readCentralDirectory(fd: number, path: string): Map<string, ZipEntry> {
  const size = fstatSync(fd).size;
  const tailLen = Math.min(size, 22 + 65535);
  const tail = readAt(fd, size - tailLen, tailLen, path);
  const tv = view(tail);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--)
    if (tv.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  if (eocd < 0)
    throw new HfLoadError(`${path}: truncated or corrupt archive (no ZIP end-of-central-directory record)`);
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === ZIP64_LOCATOR) {
    const at = Number(tv.getBigUint64(eocd - 20 + 8, true));
    const z = view(readAt(fd, at, 56, path));
    if (z.getUint32(0, true) !== ZIP64_EOCD) throw new HfLoadError(`${path}: corrupt ZIP64 record`);
    count = Number(z.getBigUint64(32, true));
    cdSize = Number(z.getBigUint64(40, true));
    cdOffset = Number(z.getBigUint64(48, true));
  }
  if (cdOffset + cdSize > size)
    throw new HfLoadError(`${path}: truncated archive (central directory past the end)`);
  const cd = readAt(fd, cdOffset, cdSize, path);
  const cv = view(cd);
  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cv.getUint32(p, true) !== CENTRAL)
      throw new HfLoadError(`${path}: corrupt archive (bad central directory entry ${i})`);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let usize = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field: 64-bit values for the fields saturated at 0xffffffff, in order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (usize === 0xffffffff) {
          usize = Number(cv.getBigUint64(q, true));
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(cv.getBigUint64(q, true));
          q += 8;
        }
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(cv.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, crc, compressedSize, size: usize, localHeaderOffset });
    p = extraEnd + commentLen;
  }
  return entries;
}
