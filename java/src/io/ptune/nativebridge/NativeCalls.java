package io.ptune.nativebridge;

import io.ptune.PtuneException;
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
        }
    }

    /** Runs a native call; a C++ exception (a RuntimeException from JavaCPP) becomes a PtuneException. */
    static <T> T call(Supplier<T> body) {
        ensureLoaded();
        try {
            return body.get();
        } catch (PtuneException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new PtuneException(e.getMessage(), e);
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
