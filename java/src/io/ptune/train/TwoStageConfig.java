package io.ptune.train;

import io.ptune.InvalidConfigException;

/**
 * The optional second stage of training: after the prompt has warmed up alone (stage 1, typically
 * at {@link #DEFAULT_PROMPT_LEARNING_RATE}), the top {@code layers} transformer layers become
 * trainable too, at a much lower rate, with the prompt continuing at its own rate (separate AdamW
 * parameter groups). The layers are trainable copies: the base model's files are never modified;
 * the adapter saves them in {@code ptune_layers.safetensors}. Stage 2 runs with a fresh optimizer
 * (moments start at zero) and its own schedule of {@code steps} (or {@code epochs}) steps, with no
 * warm-up. Immutable; build it with {@link #builder()}.
 *
 * @param layers how many of the top layers to unfreeze (1 .. the model's layers)
 * @param learningRate the layers' peak learning rate (default {@link #DEFAULT_LAYER_LEARNING_RATE})
 * @param steps optimizer steps of stage 2 when > 0
 * @param epochs passes over the data in stage 2 when {@code steps} is 0
 */
public record TwoStageConfig(int layers, double learningRate, long steps, int epochs) {

    /** The usual prompt learning rate of stage 1 in two-stage training. */
    public static final double DEFAULT_PROMPT_LEARNING_RATE = 3e-3;

    /** The default learning rate of the unfrozen layers. */
    public static final double DEFAULT_LAYER_LEARNING_RATE = 1e-5;

    public TwoStageConfig {
        if (layers < 1) {
            throw new InvalidConfigException("stage2Layers", "must be >= 1 (the number of top layers to"
                    + " unfreeze), got " + layers);
        }
        if (!(learningRate > 0) || !Double.isFinite(learningRate)) {
            throw new InvalidConfigException("stage2LearningRate", "must be a positive number, got "
                    + learningRate + " (layers usually train at about 1e-5)");
        }
        if (steps < 0) {
            throw new InvalidConfigException("stage2Steps", "must be >= 0 (0 = use stage2Epochs), got " + steps);
        }
        if (steps == 0 && epochs <= 0) {
            throw new InvalidConfigException("stage2Epochs", "must be > 0, got " + epochs);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder; {@link #layers(int)} is required. */
    public static final class Builder {
        private Integer layers;
        private double learningRate = DEFAULT_LAYER_LEARNING_RATE;
        private Long steps;
        private Integer epochs;

        private Builder() {}

        /** Required: the number of top layers to unfreeze. */
        public Builder layers(int layers) {
            this.layers = layers;
            return this;
        }

        /** Default 1e-5. */
        public Builder learningRate(double learningRate) {
            this.learningRate = learningRate;
            return this;
        }

        /** Stage-2 optimizer steps; cannot be combined with {@link #epochs(int)}. */
        public Builder steps(long steps) {
            this.steps = steps;
            return this;
        }

        /** Stage-2 passes over the data; default 1. */
        public Builder epochs(int epochs) {
            this.epochs = epochs;
            return this;
        }

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public TwoStageConfig build() {
            if (layers == null) {
                throw new InvalidConfigException("stage2Layers", "is required; set how many top layers to unfreeze");
            }
            if (steps != null && epochs != null) {
                throw new InvalidConfigException("stage2Steps", "cannot be combined with stage2Epochs; give one");
            }
            if (steps != null && steps <= 0) {
                throw new InvalidConfigException("stage2Steps", "must be > 0, got " + steps);
            }
            return new TwoStageConfig(layers, learningRate, steps == null ? 0 : steps, epochs == null ? 1 : epochs);
        }
    }
}
