package io.ptune.inference;

import io.ptune.InvalidConfigException;

/**
 * How to pick new tokens. Immutable; build it with {@link #builder()}.
 *
 * @param maxNewTokens the most tokens generated per row (fewer when EOS comes first)
 * @param greedy always take the most likely token; when false, sample
 * @param temperature divides the logits before sampling, > 0
 * @param topK sample only among the k most likely tokens; 0 = no limit
 * @param topP sample only from the smallest set of tokens whose probability reaches p, in (0, 1]
 * @param seed seeds sampling, so that a sampled run can be repeated
 */
public record GenerationConfig(int maxNewTokens, boolean greedy, double temperature, int topK,
        double topP, long seed) {

    public GenerationConfig {
        if (maxNewTokens <= 0) {
            throw new InvalidConfigException("maxNewTokens", "must be > 0, got " + maxNewTokens);
        }
        if (!(temperature > 0) || !Double.isFinite(temperature)) {
            throw new InvalidConfigException("temperature", "must be > 0, got " + temperature
                    + "; for deterministic output use greedy decoding instead of temperature 0");
        }
        if (topK < 0) {
            throw new InvalidConfigException("topK", "must be >= 0 (0 = no limit), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new InvalidConfigException("topP", "must be in (0, 1], got " + topP);
        }
    }

    /** Greedy decoding of up to 64 tokens. */
    public static GenerationConfig defaults() {
        return builder().build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder with the defaults documented on each setter. */
    public static final class Builder {
        private int maxNewTokens = 64;
        private boolean greedy = true;
        private double temperature = 1.0;
        private int topK = 0;
        private double topP = 1.0;
        private long seed = 0;

        private Builder() {}

        /** Default 64. */
        public Builder maxNewTokens(int maxNewTokens) {
            this.maxNewTokens = maxNewTokens;
            return this;
        }

        /** Default true; false samples with temperature / top-k / top-p. */
        public Builder greedy(boolean greedy) {
            this.greedy = greedy;
            return this;
        }

        /** Default 1.0. */
        public Builder temperature(double temperature) {
            this.temperature = temperature;
            return this;
        }

        /** Default 0 (no limit). */
        public Builder topK(int topK) {
            this.topK = topK;
            return this;
        }

        /** Default 1.0 (no limit). */
        public Builder topP(double topP) {
            this.topP = topP;
            return this;
        }

        /** Default 0. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** @throws InvalidConfigException naming the first field out of range */
        public GenerationConfig build() {
            return new GenerationConfig(maxNewTokens, greedy, temperature, topK, topP, seed);
        }
    }
}
