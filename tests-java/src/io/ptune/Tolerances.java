package io.ptune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.IntFunction;

/**
 * Tolerances that follow from the computation, so the suite holds on any CPU and BLAS kernel (the
 * build runs it under several: toolchains/kernels.sh). The native suite's tests-native/tolerance.h
 * states the same rules.
 *
 * <p>Two evaluations of one quantity that round differently (another BLAS blocking or vector width,
 * a row alone or inside a batch, the KV cache or a full recompute, ptune or transformers) differ by
 * a few units in the last place of the quantity's magnitude per rounded reduction, accumulated over
 * the computation. So closeness is asserted relative to the magnitude of what is compared; bit
 * equality only for the same shapes on the same machine (a reloaded adapter, a resumed run).
 */
public final class Tolerances {
    /** fp32 machine epsilon, 1.19e-7. */
    public static final double FP32_EPS = Math.ulp(1.0f);

    /**
     * Ulps of the magnitude allowed between two fp32 evaluations of one model output (logits,
     * hidden states, losses, gradients). A forward of the small models here chains a few dozen
     * rounded reductions (norms, projections, attention, MLP, the vocabulary head), each worth about
     * sqrt(n)/2 ulps of its output, and the errors add across layers: a few dozen ulps is the
     * expected size (measured at most ~20 across the kernels). 128 leaves room for other CPUs; a
     * real bug (a wrong mask, position or term) is off by 1e-3 of the magnitude or far more.
     */
    public static final double MODEL_ULPS = 128;

    private Tolerances() {}

    /** Allowed |a - b| for fp32 model outputs of magnitude {@code scale}. */
    public static double fp32(double scale) {
        return MODEL_ULPS * FP32_EPS * scale;
    }

    /** max |x| over the values. */
    public static double maxAbs(float[][] values) {
        double m = 0;
        for (float[] row : values) {
            m = Math.max(m, maxAbs(row));
        }
        return m;
    }

    /** max |x| over the values. */
    public static double maxAbs(float[] values) {
        double m = 0;
        for (float v : values) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /** max |a - b| over two arrays of one shape. */
    public static double maxDiff(float[][] a, float[][] b) {
        assertEquals(a.length, b.length, "rows");
        double m = 0;
        for (int r = 0; r < a.length; r++) {
            m = Math.max(m, maxDiff(a[r], b[r]));
        }
        return m;
    }

    /** max |a - b| over two arrays of one length. */
    public static double maxDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length, "length");
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    /** {@code actual} within fp32 model rounding of {@code expected}'s magnitude; returns the max difference. */
    public static double assertClose(float[][] expected, float[][] actual, String what) {
        return assertClose(expected, actual, 0, what);
    }

    /**
     * As {@link #assertClose(float[][], float[][], String)}, for a reference whose own fp32 rounding
     * error {@code referenceError} (max |fp32 - float64| of the same computation, measured when it was
     * written) is known. An ill-conditioned model (e.g. post-LN BERT with random weights) amplifies
     * rounding past {@link #MODEL_ULPS} ulps of its outputs; two fp32 implementations, each about that
     * far from the exact value, then differ by up to about twice it, so 4x it is allowed.
     */
    public static double assertClose(float[][] expected, float[][] actual, double referenceError, String what) {
        double diff = maxDiff(expected, actual);
        double tolerance = Math.max(fp32(maxAbs(expected)), 4 * referenceError);
        assertTrue(diff <= tolerance, what + ": max difference " + diff + " exceeds the rounding tolerance " + tolerance
                + " (values up to " + maxAbs(expected) + ", reference's own fp32 error " + referenceError + ")");
        return diff;
    }

    /**
     * Greedy tokens compared across code paths (KV cache or recompute, a row alone or in a batch,
     * ptune or transformers): {@code actual} must equal {@code expected} token for token, except that
     * at the first difference the two tokens may tie within rounding in the next-token logits of the
     * reference path at that step ({@code logitsAt.apply(i)}: after the input and
     * {@code expected[0..i)}). After such a tie the continuations may diverge, so the comparison ends.
     */
    public static void assertSameGreedyTokens(long[] expected, long[] actual, IntFunction<float[]> logitsAt,
            String what) {
        int n = Math.min(expected.length, actual.length);
        for (int i = 0; i < n; i++) {
            if (expected[i] == actual[i]) {
                continue;
            }
            float[] logits = logitsAt.apply(i);
            double gap = Math.abs((double) logits[(int) expected[i]] - logits[(int) actual[i]]);
            double tolerance = fp32(maxAbs(logits));
            assertTrue(gap <= tolerance, what + ": token " + i + " is " + actual[i] + " instead of " + expected[i]
                    + ", whose logits differ by " + gap + ", more than the rounding tolerance " + tolerance);
            return;  // a tie within rounding: either token is the argmax, and the rest may differ
        }
        assertEquals(expected.length, actual.length, what + ": number of tokens");
    }

    /** {@code input} followed by the first {@code count} of {@code tokens}. */
    public static long[] prefixed(long[] input, long[] tokens, int count) {
        long[] out = java.util.Arrays.copyOf(input, input.length + count);
        System.arraycopy(tokens, 0, out, input.length, count);
        return out;
    }

    /** The last row of a logits array: the next-token logits. */
    public static float[] last(float[][] logits) {
        return logits[logits.length - 1];
    }
}
