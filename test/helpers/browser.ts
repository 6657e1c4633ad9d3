/**
 * Headless Chromium for tests, driven by playwright-core (no bundled browser: the system's Chromium, which CI
 * installs with `apt-get install chromium`), kept on loopback: the helpers here launch it without the background
 * services that call home, block every page request that is not for 127.0.0.1, and read the PNGs it takes.
 */
import { inflateSync } from 'node:zlib';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { findChromium } from '../../scripts/lib/system-packages.js';

export { findChromium };

/** The flags every test browser runs with: headless, no sandbox (containers), and nothing that phones home. */
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--no-first-run',
  '--metrics-recording-only',
  '--disable-features=Translate,OptimizationHints,MediaRouter',
];

/** A headless Chromium with CHROMIUM_ARGS. Close it in an `after` hook. */
export async function launchChromium(options: { executablePath?: string } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: options.executablePath ?? findChromium(),
    args: CHROMIUM_ARGS,
    timeout: 15_000,
  });
}

/** True for URLs the test browser may fetch: http(s)/ws(s) to 127.0.0.1, and in-page data:/blob:/about: URLs. */
export function isLoopbackUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (['data:', 'blob:', 'about:'].includes(parsed.protocol)) return true;
  return ['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol) && parsed.hostname === '127.0.0.1';
}

/**
 * Aborts every request of `target` (a page, or a whole context with its popups) whose host is not 127.0.0.1, and
 * records it: assert `blocked` is empty at the end of the test.
 */
export async function blockNonLoopback(target: Page | BrowserContext): Promise<{ blocked: string[] }> {
  const blocked: string[] = [];
  await target.route('**/*', (route) => {
    const url = route.request().url();
    if (isLoopbackUrl(url)) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  return { blocked };
}

export interface DecodedPng {
  width: number;
  height: number;
  /** Bytes per pixel: 3 (RGB) or 4 (RGBA). */
  channels: number;
  /** The unfiltered pixels, row by row. */
  pixels: Buffer;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Width and height from a PNG's IHDR, after checking the signature. */
export function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG');
  if (png.toString('latin1', 12, 16) !== 'IHDR') throw new Error('PNG without IHDR first');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Decodes the 8-bit RGB/RGBA, non-interlaced PNGs Chromium's screenshots are, so a test can look at pixels
 * without an image library. Anything else throws.
 */
export function decodePng(png: Buffer): DecodedPng {
  const { width, height } = pngSize(png);
  const bitDepth = png[24];
  const colorType = png[25];
  const interlace = png[28];
  if (bitDepth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) {
    throw new Error(
      `unsupported PNG: bit depth ${bitDepth}, colour type ${colorType}, interlace ${interlace}`,
    );
  }
  const channels = colorType === 6 ? 4 : 3;
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + length));
    if (type === 'IEND') break;
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('PNG image data is truncated');
  const pixels = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    const prev = out - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[out + x - channels]! : 0;
      const b = y > 0 ? pixels[prev + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[prev + x - channels]! : 0;
      const v = line[x]!;
      let value: number;
      if (filter === 0) value = v;
      else if (filter === 1) value = v + a;
      else if (filter === 2) value = v + b;
      else if (filter === 3) value = v + ((a + b) >> 1);
      else if (filter === 4) value = v + paeth(a, b, c);
      else throw new Error(`bad PNG filter type ${filter} on row ${y}`);
      pixels[out + x] = value & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** How many pixels of `image` are within `tolerance` (per channel) of the colour `[r, g, b]`. */
export function countPixels(image: DecodedPng, rgb: [number, number, number], tolerance = 2): number {
  let n = 0;
  for (let i = 0; i < image.pixels.length; i += image.channels) {
    if (
      Math.abs(image.pixels[i]! - rgb[0]) <= tolerance &&
      Math.abs(image.pixels[i + 1]! - rgb[1]) <= tolerance &&
      Math.abs(image.pixels[i + 2]! - rgb[2]) <= tolerance
    ) {
      n++;
    }
  }
  return n;
}

/** The number of distinct RGB colours in `image` (a blank page has one). */
export function distinctColours(image: DecodedPng): number {
  const seen = new Set<number>();
  for (let i = 0; i < image.pixels.length; i += image.channels) {
    seen.add((image.pixels[i]! << 16) | (image.pixels[i + 1]! << 8) | image.pixels[i + 2]!);
  }
  return seen.size;
}
