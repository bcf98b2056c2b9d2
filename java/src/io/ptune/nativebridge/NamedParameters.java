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

    /** @param what how error messages name a parameter, e.g. "parameter" */
    NamedParameters(Access access, String what) {
        this.access = access;
        this.what = what;
    }

    /** Names in the native object's order. */
    List<String> names() {
        long n = access.count();
        List<String> names = new ArrayList<>();
        for (long i = 0; i < n; i++) {
            long index = i;
            names.add(NativeCalls.call(() -> access.name(index)));
        }
        return List.copyOf(names);
    }

    long[] shape(String name) {
        long[] dims = new long[4];
        int rank = Math.toIntExact(NativeCalls.call(() -> access.shape(name, dims)));
        return Arrays.copyOf(dims, rank);
    }

    int numel(String name) {
        return Math.toIntExact(NativeCalls.call(() -> access.numel(name)));
    }

    float[] read(String name) {
        float[] out = new float[numel(name)];
        NativeCalls.run(() -> access.read(name, out));
        return out;
    }

    /** @throws PtuneException if values is null or not the parameter's size */
    void write(String name, float[] values) {
        int numel = numel(name);
        if (values == null || values.length != numel) {
            throw new PtuneException(what + " '" + name + "' holds " + numel + " values, got "
                    + (values == null ? "null" : values.length));
        }
        NativeCalls.run(() -> access.write(name, values));
    }
}
