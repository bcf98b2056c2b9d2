package io.ptune.nativebridge;

/** libtorch's intra-op thread count, process-wide (the public face is {@link io.ptune.ComputeThreads}). */
public final class NativeThreads {
    private NativeThreads() {}

    public static int get() {
        return NativeCalls.threads();
    }

    public static void set(int threads) {
        NativeCalls.ensureLoaded();
        NativeCalls.setThreads(threads);
    }
}
