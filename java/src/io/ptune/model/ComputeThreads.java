package io.ptune.model;

import io.ptune.InvalidConfigException;
import io.ptune.nativebridge.NativeThreads;

/**
 * How many threads the native core uses for its tensor operations, for the whole process (like
 * {@code torch.set_num_threads}). It starts at the number of processors the JVM sees, or at
 * {@code -Dptune.threads=N} / {@code PTUNE_THREADS=N} when given; the CLI's {@code --threads}
 * sets it. The BLAS library (OpenBLAS) keeps its own pool ({@code OPENBLAS_NUM_THREADS}).
 */
public final class ComputeThreads {
    /** More threads than this is a typo, not a machine: refused before libtorch spawns them. */
    public static final int MAX_THREADS = NativeThreads.MAX_THREADS;

    private ComputeThreads() {}

    /** The current count. */
    public static int get() {
        return NativeThreads.get();
    }

    /**
     * Sets the count for calls made from now on.
     *
     * @throws InvalidConfigException if {@code threads} is below 1 or above {@link #MAX_THREADS}
     */
    public static void set(int threads) {
        if (threads < 1 || threads > MAX_THREADS) {
            throw new InvalidConfigException("threads", "must be between 1 and " + MAX_THREADS + ", got " + threads
                    + " (this machine has " + Runtime.getRuntime().availableProcessors() + " processors)");
        }
        NativeThreads.set(threads);
    }
}
