package io.ptune.prompt;

import java.util.Arrays;
import java.util.Objects;

/**
 * The values of an input-level prompt: {@code n} vectors of width {@code C} (the model's hidden
 * size), e.g. a trained prompt read with {@link PromptModule#inputPrompt()} or a warm start read
 * from an adapter. To put it in front of a model, wrap it with {@link PromptModule#fixed}.
 *
 * <p>The array is copied on the way in and out, so a SoftPrompt is a value that nothing can
 * change behind its owner's back.
 *
 * @param numVirtualTokens n
 * @param dim C
 * @param values (n, C) row-major
 */
public record SoftPrompt(int numVirtualTokens, int dim, float[] values) {

    public SoftPrompt {
        if (numVirtualTokens <= 0) {
            throw new IllegalArgumentException("numVirtualTokens must be > 0, got " + numVirtualTokens);
        }
        if (dim <= 0) {
            throw new IllegalArgumentException("dim must be > 0, got " + dim);
        }
        Objects.requireNonNull(values, "values");
        if (values.length != (long) numVirtualTokens * dim) {
            throw new IllegalArgumentException("values has " + values.length + " floats, expected "
                    + numVirtualTokens + " x " + dim + " = " + (long) numVirtualTokens * dim);
        }
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new IllegalArgumentException("value " + values[i] + " at virtual token "
                        + (i / dim) + ", column " + (i % dim) + " is not finite");
            }
        }
        values = values.clone();
    }

    /** A copy of the (n, C) values. */
    @Override
    public float[] values() {
        return values.clone();
    }

    /** A copy of virtual token {@code i}'s vector. */
    public float[] row(int i) {
        Objects.checkIndex(i, numVirtualTokens);
        return Arrays.copyOfRange(values, i * dim, (i + 1) * dim);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof SoftPrompt that
                && numVirtualTokens == that.numVirtualTokens
                && dim == that.dim
                && Arrays.equals(values, that.values);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * numVirtualTokens + dim) + Arrays.hashCode(values);
    }

    @Override
    public String toString() {
        return "SoftPrompt[numVirtualTokens=" + numVirtualTokens + ", dim=" + dim + "]";
    }
}
