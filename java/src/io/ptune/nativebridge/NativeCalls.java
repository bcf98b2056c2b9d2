package io.ptune.nativebridge;

import io.ptune.PtuneException;
import io.ptune.ResourceExhaustedException;
import java.util.Optional;
import java.util.Properties;
import java.util.function.Supplier;
import org.bytedeco.javacpp.Loader;

/** Loads the native library once and turns native failures into {@link PtuneException}. */
final class NativeCalls {
    private static volatile boolean loaded;
    /** The intra-op thread count ptune chose (0: libtorch's own), applied to every calling thread. */
    private static volatile int threads;
    /** The count applied to the current thread (libtorch's OpenMP pool is configured per thread). */
    private static final ThreadLocal<int[]> APPLIED_THREADS = ThreadLocal.withInitial(() -> new int[1]);

    private NativeCalls() {}

    static void ensureLoaded() {
        if (loaded) {
            return;
        }
        synchronized (NativeCalls.class) {
            if (loaded) {
                return;
            }
            // PyTorch 2.x builds (toolchains/torch2.cmake, cuda.cmake): libtorch from
            // PTUNE_LIBTORCH_DIR or python's torch first; Debian builds: from the system paths.
            Optional<Properties> descriptor = TorchLibraries.descriptor();
            TorchLibraries.loadIfExternal(descriptor);
            try {
                Loader.load(PtuneNative.class);
            } catch (UnsatisfiedLinkError e) {
                String needs = TorchLibraries.external(descriptor)
                        ? "it was built against " + TorchLibraries.builtAgainst(descriptor.get()) + " ("
                                + TorchLibraries.HINT + ")"
                        : "it needs Debian's libtorch (run toolchains/bootstrap.sh)";
                throw new PtuneException(
                        "cannot load the ptune native library for "
                                + Loader.getPlatform()
                                + " ("
                                + e.getMessage()
                                + "); "
                                + needs,
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

    /**
     * Sets the intra-op thread count for every thread that calls the native core from now on.
     * libtorch's OpenMP backend keeps the count per thread (a thread takes the process-wide value
     * on its first parallel operation, and keeps it), so the count is also applied to each calling
     * thread before its next native call (see {@link #call}).
     */
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
        NativeCalls.threads = threads;
        APPLIED_THREADS.get()[0] = threads;
    }

    /** Gives the calling thread the count {@link #setThreads} chose, if it has another. */
    private static void applyThreads() {
        int wanted = threads;
        if (wanted > 0) {
            int[] applied = APPLIED_THREADS.get();
            if (applied[0] != wanted) {
                PtuneNative.setIntraOpThreads(wanted);
                applied[0] = wanted;
            }
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
            applyThreads();
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

    /**
     * Runs a native call on the objects of {@code uses} (see {@link HandleGuard#hold}): each is
     * open and stays so until the call returns; exclusive uses have their object to themselves.
     *
     * @throws IllegalStateException naming the first object that is closed
     */
    static <T> T call(Supplier<T> body, HandleGuard.Use... uses) {
        try (HandleGuard.Held held = HandleGuard.hold(uses)) {
            return call(body);
        }
    }

    /** {@link #call(Supplier, HandleGuard.Use...)} without a result. */
    static void run(Runnable body, HandleGuard.Use... uses) {
        try (HandleGuard.Held held = HandleGuard.hold(uses)) {
            run(body);
        }
    }

    static void requireLength(String name, long[] array, long expected) {
        if (array == null || array.length != expected) {
            throw new PtuneException(name + " must hold " + expected + " values, got "
                    + (array == null ? "null" : array.length));
        }
    }
}
