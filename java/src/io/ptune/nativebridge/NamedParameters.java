package io.ptune.nativebridge;

import io.ptune.PtuneException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.BiConsumer;
import java.util.function.LongFunction;
import java.util.function.LongSupplier;
import java.util.function.ToLongBiFunction;
import java.util.function.ToLongFunction;
import org.bytedeco.javacpp.BytePointer;


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

        /**
         * The Access of a JavaCPP handle, from its six parameter methods (the generated handle
         * classes share no interface, so each passes its own method references).
         */
        static Access of(LongSupplier count, LongFunction<BytePointer> name, ToLongBiFunction<String, long[]> shape,
                ToLongFunction<String> numel, BiConsumer<String, float[]> read, BiConsumer<String, float[]> write) {
            return new Access() {
                @Override
                public long count() {
                    return count.getAsLong();
                }

                @Override
                public String name(long index) {
                    try (BytePointer pointer = name.apply(index)) {
                        return pointer.getString();
                    }
                }

                @Override
                public long shape(String parameter, long[] dims) {
                    return shape.applyAsLong(parameter, dims);
                }

                @Override
                public long numel(String parameter) {
                    return numel.applyAsLong(parameter);
                }

                @Override
                public void read(String parameter, float[] out) {
                    read.accept(parameter, out);
                }

                @Override
                public void write(String parameter, float[] values) {
                    write.accept(parameter, values);
                }
            };
        }
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
