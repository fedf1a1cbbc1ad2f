/**
 * Small seeded pseudo-random numbers, so that dithering, SpecAugment, shuffles and
 * initialisations are reproducible from one integer seed. mulberry32 is a 32-bit
 * generator (period 2^32): plenty for augmentation and shuffling, not for cryptography.
 */

/** Returns a function yielding uniform floats in [0, 1) from a 32-bit seed (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seeded generator with the few draws the project needs. Its whole state is one
 * 32-bit integer: `new Rng(rng.state())` continues exactly where `rng` is (normal()
 * keeps no spare value, so that this holds after any mix of calls).
 */
export class Rng {
  #a: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    this.#a = Math.trunc(seed) >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    // Same step as mulberry32, inlined so the state stays inspectable.
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi): lo inclusive, hi exclusive (like torch.randint). */
  int(lo: number, hi: number): number {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi <= lo) {
      throw new Error(`Rng.int: need integers lo < hi, got [${lo}, ${hi})`);
    }
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /** Standard normal draw (Box-Muller; uses two uniforms, keeps no spare). */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log never sees 0
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** The generator's state; `new Rng(state)` resumes the same sequence. */
  state(): number {
    return this.#a;
  }
}
