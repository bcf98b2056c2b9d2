package io.ptune.nativebridge;

import io.ptune.PtuneException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The named fp32 parameters of a native object (a prompt, a classification head), read and
 * written by name through the calls both façade classes have. The JavaCPP classes share no
 * interface, so each owner adapts its handle to {@link Access}.
 */
final class NamedParameters {
    /** The façade's parameter calls of one native object. */
    interface Access {
        long count();

        String name(long index);

        /** Fills dims (up to 4) and returns the rank. */
        long shape(String name, long[] dims);

        long numel(String name);

        void read(String name, float[] out);

        void write(String name, float[] values);
    }

    private final Access access;
    private final String what;
    private final HandleGuard guard;

    /**
     * @param what how error messages name a parameter, e.g. "parameter"
     * @param guard the owner's guard: reads share the object, a write has it to itself
     */
    NamedParameters(Access access, String what, HandleGuard guard) {
        this.access = access;
        this.what = what;
        this.guard = guard;
    }

    /** Names in the native object's order. */
    List<String> names() {
        return NativeCalls.call(() -> {
            long n = access.count();
            List<String> names = new ArrayList<>();
            for (long i = 0; i < n; i++) {
                names.add(access.name(i));
            }
            return List.copyOf(names);
        }, guard.shared());
    }

    long[] shape(String name) {
        long[] dims = new long[4];
        int rank = Math.toIntExact(NativeCalls.call(() -> access.shape(name, dims), guard.shared()));
        return Arrays.copyOf(dims, rank);
    }

    int numel(String name) {
        return Math.toIntExact(NativeCalls.call(() -> access.numel(name), guard.shared()));
    }

    float[] read(String name) {
        return NativeCalls.call(() -> {
            float[] out = new float[Math.toIntExact(access.numel(name))];
            access.read(name, out);
            return out;
        }, guard.shared());
    }

    /** @throws PtuneException if values is null or not the parameter's size */
    void write(String name, float[] values) {
        NativeCalls.run(() -> {
            long numel = access.numel(name);
            if (values == null || values.length != numel) {
                throw new PtuneException(what + " '" + name + "' holds " + numel + " values, got "
                        + (values == null ? "null" : values.length));
            }
            access.write(name, values);
        }, guard.exclusive());
    }
}
