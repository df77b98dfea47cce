//! Element-wise loops compiled for the CPU they run on: AVX2 (eight f32 lanes) where the
//! processor has it, the baseline SSE2 (four) elsewhere, chosen once at run time; and an
//! `exp` the compiler can vectorise.
//!
//! Why by hand: the crate is built for the x86-64 baseline (a binary runs on any x86-64
//! machine), so without this the fused kernels' loops use four lanes, and libm's scalar
//! `expf` keeps a loop that calls it from being vectorised at all. The AVX2 path does the
//! same IEEE operations in the same order (no fused multiply-adds: Rust never contracts
//! `a * b + c`), so both paths give identical results.

/// Defines a function whose body is compiled twice, for AVX2 and for the baseline, the
/// AVX2 copy called when this CPU has it. The body should call only `#[inline(always)]`
/// functions in its loops, so that they are compiled inside each copy, and loop over
/// indices: iterator adapters such as `for_each` on a `zip` stay out-of-line functions
/// compiled for the baseline.
macro_rules! vectorised {
    ($(#[$doc:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        fn $name($($a: $t),*) {
            #[inline(always)]
            #[allow(clippy::needless_range_loop)]
            fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($a: $t),*) {
                    body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: this CPU has AVX2, the only feature `avx2` is compiled for.
                    return unsafe { avx2($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}
pub(crate) use vectorised;

/// `eˣ` for `x` clamped to [−87, 88] (Cephes' `expf`: `x = n ln 2 + r` with |r| ≤ ½ ln 2,
/// a degree-6 polynomial for `eʳ`, and `2ⁿ` built in the exponent bits; relative error
/// below 2·10⁻⁷), in plain arithmetic that vectorises.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub(crate) fn exp_f32(x: f32) -> f32 {
    // 1.5·2²³: adding it rounds to the nearest integer n (|n| < 2²²), which then sits in
    // the low bits of the sum; integer arithmetic on those bits gives 2ⁿ (no float-to-int
    // conversion, whose saturating semantics do not vectorise).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let two_n = f32::from_bits((shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23);
    // ln 2 in two parts, the first exact in f32, so that r keeps its precision.
    let r = (x - n * 0.693_359_375) - n * -2.121_944_4e-4;
    let mut p = 1.987_569_15e-4;
    p = p * r + 1.398_199_950_7e-3;
    p = p * r + 8.333_451_907_3e-3;
    p = p * r + 4.166_579_589_4e-2;
    p = p * r + 1.666_666_545_9e-1;
    p = p * r + 5.000_000_120_1e-1;
    (p * r * r + r + 1.0) * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable `exp` agrees with libm's to 2·10⁻⁷ relative over its range, is
    /// exact at 0 and stays finite and positive at the clamps.
    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let exact = (x as f64).exp();
            worst = worst.max(((exp_f32(x) as f64 - exact) / exact).abs());
        }
        assert!(worst < 2e-7, "relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1e9) > 0.0 && exp_f32(1e9).is_finite());
        assert_eq!(exp_f32(f32::NEG_INFINITY), exp_f32(-87.0));
    }
}
