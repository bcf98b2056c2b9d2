package io.ptune.nativebridge;

import io.ptune.PtuneException;
import io.ptune.ResourceExhaustedException;
import java.util.function.Supplier;
import org.bytedeco.javacpp.Loader;

/** Loads the native library once and turns native failures into {@link PtuneException}. */
final class NativeCalls {
    private static volatile boolean loaded;

    private NativeCalls() {}

    static void ensureLoaded() {
        if (loaded) {
            return;
        }
        synchronized (NativeCalls.class) {
            if (loaded) {
                return;
            }
            try {
                Loader.load(PtuneNative.class);
            } catch (UnsatisfiedLinkError e) {
                throw new PtuneException(
                        "cannot load the ptune native library for "
                                + Loader.getPlatform()
                                + " ("
                                + e.getMessage()
                                + "); it needs Debian's libtorch (run toolchains/bootstrap.sh)",
                        e);
            }
            loaded = true;
            applyDefaultThreads();
        }
    }

    /**
     * libtorch's intra-op pool starts with as many threads as the JVM has processors, as
     * PyTorch 2 does (Debian's libtorch 1.13 starts with one on some machines, which leaves
     * cores idle; 1.3x on the medium benchmark). {@code -Dptune.threads=N} or
     * {@code PTUNE_THREADS=N} choose another count; with {@code OMP_NUM_THREADS} set, libtorch's
     * own choice stands.
     */
    private static void applyDefaultThreads() {
        String configured = System.getProperty("ptune.threads", System.getenv("PTUNE_THREADS"));
        int threads;
        if (configured != null && !configured.isBlank()) {
            try {
                threads = Integer.parseInt(configured.strip());
            } catch (NumberFormatException e) {
                throw new PtuneException("ptune.threads / PTUNE_THREADS must be a whole number >= 1, got '"
                        + configured + "'");
            }
        } else if (System.getenv("OMP_NUM_THREADS") != null) {
            return;
        } else {
            threads = Runtime.getRuntime().availableProcessors();
        }
        setThreads(threads);
    }

    static void setThreads(int threads) {
        if (threads < 1 || threads > NativeThreads.MAX_THREADS) {
            throw new PtuneException("the thread count (ptune.threads / PTUNE_THREADS / --threads) must be between 1"
                    + " and " + NativeThreads.MAX_THREADS + ", got " + threads);
        }
        try {
            PtuneNative.setIntraOpThreads(threads);
        } catch (RuntimeException e) {
            throw new PtuneException(e.getMessage(), e);
        }
    }

    static int threads() {
        return call(PtuneNative::intraOpThreads);
    }

    /** What the native façade puts in the message of an allocation failure (api/translate.h). */
    static final String OUT_OF_MEMORY = ": out of memory (";

    /**
     * Runs a native call; a C++ exception (a RuntimeException from JavaCPP) becomes a
     * PtuneException, an allocation failure a {@link ResourceExhaustedException}.
     */
    static <T> T call(Supplier<T> body) {
        ensureLoaded();
        try {
            return body.get();
        } catch (PtuneException e) {
            throw e;
        } catch (RuntimeException e) {
            String message = String.valueOf(e.getMessage());
            if (message.contains(OUT_OF_MEMORY)) {
                throw new ResourceExhaustedException(message, e);
            }
            throw new PtuneException(message, e);
        }
    }

    static void run(Runnable body) {
        call(() -> {
            body.run();
            return null;
        });
    }

    static void requireLength(String name, long[] array, long expected) {
        if (array == null || array.length != expected) {
            throw new PtuneException(name + " must hold " + expected + " values, got "
                    + (array == null ? "null" : array.length));
        }
    }
}
