package io.ptune.prompt;

import io.ptune.InvalidConfigException;

/**
 * Prefix tuning / P-tuning v2 (Li & Liang 2021; Liu et al. 2022), as PEFT's
 * {@code PrefixTuningConfig} defines it: n trainable key/value positions in every attention
 * layer. Without projection the prefix is an embedding {@code (n, 2·layers·token_dim)}; with
 * {@code prefixProjection} an embedding {@code (n, token_dim)} goes through
 * {@code Linear(token_dim, h), Tanh, Linear(h, 2·layers·token_dim)}. On grouped-query models
 * {@code token_dim = head_dim · num_key_value_heads} (one prefix per key/value head), as PEFT
 * sets it. Prefix keys are not rotated; the text's positions continue after the n prefix
 * positions. Immutable; build it with {@link #builder()}.
 *
 * @param numVirtualTokens n (> 0)
 * @param prefixProjection reparameterise the prefix through the MLP (default false)
 * @param encoderHiddenSize the projection width h; null means token_dim, as PEFT sets it
 *     (note: {@code head_dim · num_key_value_heads} on grouped-query models). Unused without
 *     the projection
 * @param seed seeds the random init of the prefix and the projection
 */
public record PrefixTuningConfig(int numVirtualTokens, boolean prefixProjection, Integer encoderHiddenSize, long seed)
        implements PromptMethodConfig {

    public PrefixTuningConfig {
        if (numVirtualTokens <= 0) {
            throw new InvalidConfigException("numVirtualTokens", "must be > 0, got " + numVirtualTokens
                    + "; a prefix of length 0 does nothing (e.g. use 20)");
        }
        if (encoderHiddenSize != null && encoderHiddenSize <= 0) {
            throw new InvalidConfigException("encoderHiddenSize", "must be > 0, got " + encoderHiddenSize
                    + "; leave it unset for token_dim");
        }
    }

    @Override
    public PromptMethod method() {
        return PromptMethod.PREFIX_TUNING;
    }

    /** The projection width for prefix width {@code tokenDim} (= head_dim · kv heads). */
    public int resolvedEncoderHiddenSize(int tokenDim) {
        return encoderHiddenSize == null ? tokenDim : encoderHiddenSize;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder; {@link #numVirtualTokens(int)} is required, everything else has PEFT's default. */
    public static final class Builder {
        private Integer numVirtualTokens;
        private boolean prefixProjection;
        private Integer encoderHiddenSize;
        private long seed = 42;

        private Builder() {}

        /** Required: the number of prefix positions, > 0. */
        public Builder numVirtualTokens(int numVirtualTokens) {
            this.numVirtualTokens = numVirtualTokens;
            return this;
        }

        /** Default false. */
        public Builder prefixProjection(boolean prefixProjection) {
            this.prefixProjection = prefixProjection;
            return this;
        }

        /** Default token_dim. */
        public Builder encoderHiddenSize(int encoderHiddenSize) {
            this.encoderHiddenSize = encoderHiddenSize;
            return this;
        }

        /** Default 42. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public PrefixTuningConfig build() {
            if (numVirtualTokens == null) {
                throw new InvalidConfigException("numVirtualTokens",
                        "is required; set the number of prefix positions (e.g. 20)");
            }
            return new PrefixTuningConfig(numVirtualTokens, prefixProjection, encoderHiddenSize, seed);
        }
    }
}
