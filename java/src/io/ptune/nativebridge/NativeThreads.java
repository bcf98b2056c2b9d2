package io.ptune.nativebridge;

/** libtorch's intra-op thread count, process-wide (the public face is io.ptune.model.ComputeThreads). */
public final class NativeThreads {
    /** More threads than this is a typo, not a machine: refused before libtorch spawns them. */
    public static final int MAX_THREADS = 1024;

    private NativeThreads() {}

    public static int get() {
        return NativeCalls.threads();
    }

    public static void set(int threads) {
        NativeCalls.ensureLoaded();
        NativeCalls.setThreads(threads);
    }
}
