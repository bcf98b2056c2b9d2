package io.ptune.train;

import io.ptune.InvalidConfigException;
import java.util.Objects;

/**
 * How to train a soft prompt. Immutable; build it with {@link #builder()}, where every field has a
 * default and {@code build()} rejects values out of range naming the field.
 *
 * <p>The default learning rate, 1e-2, is high by fine-tuning standards on purpose: only the prompt
 * vectors move, and prompt tuning is commonly run at 1e-2 to 3e-1 (Lester et al. used 0.3 with
 * Adafactor; PEFT's examples use 3e-2 with AdamW). 1e-2 is the conservative end for AdamW.
 *
 * @param learningRate peak AdamW learning rate, > 0
 * @param epochs passes over the data when {@code maxSteps} is 0
 * @param maxSteps when > 0, the number of optimizer steps to make (cycling through epochs as
 *     needed), replacing {@code epochs}
 * @param batchSize examples per micro-batch
 * @param gradAccum micro-batches per optimizer step (effective batch = batchSize x gradAccum)
 * @param lossAveraging how the micro-batches of a step are weighed (per label token by default)
 * @param maxLength longest tokenised example; longer ones keep their start
 * @param seed seeds shuffling (and nothing else: prompt init has its own seed)
 * @param warmupSteps optimizer steps of linear warm-up from 0 to the peak learning rate
 * @param schedule learning-rate curve after warm-up
 * @param weightDecay AdamW decoupled weight decay, >= 0
 * @param maxGradNorm global gradient-norm clipping threshold, > 0
 * @param beta1 AdamW first-moment decay, in [0, 1)
 * @param beta2 AdamW second-moment decay, in [0, 1)
 * @param epsilon AdamW denominator epsilon, > 0
 * @param logEvery log a line every this many optimizer steps
 * @param onNonFinite what a NaN or infinite loss or gradient norm does (stop by default)
 * @param maxNonFinite with {@link NonFinitePolicy#SKIP}: stop after this many dropped cycles in a
 *     row, >= 1
 * @param evalEvery with a dev set: evaluate every this many optimizer steps; 0 = once per epoch
 * @param metric the dev metric early stopping and the kept prompt go by
 * @param patience with a dev set: stop after this many evaluations without a better {@code
 *     metric} and keep the best prompt; 0 = never stop early and keep the last prompt
 * @param twoStage the second stage (top layers unfrozen) after the first, or null for prompt-only
 *     training
 */
public record TrainingConfig(
        double learningRate,
        int epochs,
        long maxSteps,
        int batchSize,
        int gradAccum,
        LossAveraging lossAveraging,
        int maxLength,
        long seed,
        long warmupSteps,
        LrSchedule schedule,
        double weightDecay,
        double maxGradNorm,
        double beta1,
        double beta2,
        double epsilon,
        int logEvery,
        NonFinitePolicy onNonFinite,
        int maxNonFinite,
        long evalEvery,
        DevMetric metric,
        int patience,
        TwoStageConfig twoStage) {

    public TrainingConfig {
        Objects.requireNonNull(schedule, "schedule");
        Objects.requireNonNull(lossAveraging, "lossAveraging");
        Objects.requireNonNull(onNonFinite, "onNonFinite");
        Objects.requireNonNull(metric, "metric");
        if (!(learningRate > 0) || !Double.isFinite(learningRate)) {
            throw new InvalidConfigException("learningRate", "must be a positive number, got "
                    + learningRate + " (prompt tuning typically uses 1e-3 to 3e-1)");
        }
        if (maxSteps < 0) {
            throw new InvalidConfigException("maxSteps", "must be >= 0 (0 = use epochs), got " + maxSteps);
        }
        if (maxSteps == 0 && epochs <= 0) {
            throw new InvalidConfigException("epochs", "must be > 0, got " + epochs);
        }
        if (batchSize <= 0) {
            throw new InvalidConfigException("batchSize", "must be > 0, got " + batchSize);
        }
        if (gradAccum <= 0) {
            throw new InvalidConfigException("gradAccum", "must be > 0, got " + gradAccum);
        }
        if (maxLength <= 1) {
            throw new InvalidConfigException("maxLength", "must be > 1 (room for a prompt and an"
                    + " answer token), got " + maxLength);
        }
        if (warmupSteps < 0) {
            throw new InvalidConfigException("warmupSteps", "must be >= 0, got " + warmupSteps);
        }
        if (!(weightDecay >= 0) || !Double.isFinite(weightDecay)) {
            throw new InvalidConfigException("weightDecay", "must be >= 0, got " + weightDecay);
        }
        if (!(maxGradNorm > 0) || !Double.isFinite(maxGradNorm)) {
            throw new InvalidConfigException("maxGradNorm", "must be a positive number, got " + maxGradNorm);
        }
        if (!(beta1 >= 0 && beta1 < 1)) {
            throw new InvalidConfigException("beta1", "must be in [0, 1), got " + beta1);
        }
        if (!(beta2 >= 0 && beta2 < 1)) {
            throw new InvalidConfigException("beta2", "must be in [0, 1), got " + beta2);
        }
        if (!(epsilon > 0) || !Double.isFinite(epsilon)) {
            throw new InvalidConfigException("epsilon", "must be a positive number, got " + epsilon);
        }
        if (logEvery <= 0) {
            throw new InvalidConfigException("logEvery", "must be > 0, got " + logEvery);
        }
        if (maxNonFinite <= 0) {
            throw new InvalidConfigException("maxNonFinite", "must be > 0, got " + maxNonFinite);
        }
        if (evalEvery < 0) {
            throw new InvalidConfigException("evalEvery", "must be >= 0 (0 = once per epoch), got " + evalEvery);
        }
        if (patience < 0) {
            throw new InvalidConfigException("patience", "must be >= 0 (0 = no early stopping), got " + patience);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder with the defaults documented on each setter. */
    public static final class Builder {
        private Double learningRate;
        private Integer epochs;
        private Long maxSteps;
        private int batchSize = 8;
        private int gradAccum = 1;
        private LossAveraging lossAveraging = LossAveraging.TOKENS;
        private int maxLength = 256;
        private long seed = 42;
        private long warmupSteps = 0;
        private LrSchedule schedule = LrSchedule.LINEAR;
        private double weightDecay = 0.0;
        private double maxGradNorm = 1.0;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double epsilon = 1e-8;
        private int logEvery = 10;
        private NonFinitePolicy onNonFinite = NonFinitePolicy.STOP;
        private int maxNonFinite = 10;
        private long evalEvery = 0;
        private DevMetric metric = DevMetric.DEV_LOSS;
        private int patience = 0;
        private TwoStageConfig twoStage;
        private Integer stage2Layers;
        private Double stage2LearningRate;
        private Long stage2Steps;
        private Integer stage2Epochs;

        private Builder() {}

        /** Default 1e-2; {@link TwoStageConfig#DEFAULT_PROMPT_LEARNING_RATE} with a second stage. */
        public Builder learningRate(double learningRate) {
            this.learningRate = learningRate;
            return this;
        }

        /** Default 1. Cannot be combined with {@link #maxSteps(long)}. */
        public Builder epochs(int epochs) {
            this.epochs = epochs;
            return this;
        }

        /** Train for exactly this many optimizer steps instead of whole epochs. */
        public Builder maxSteps(long maxSteps) {
            this.maxSteps = maxSteps;
            return this;
        }

        /** Default 8. */
        public Builder batchSize(int batchSize) {
            this.batchSize = batchSize;
            return this;
        }

        /** Default 1. */
        public Builder gradAccum(int gradAccum) {
            this.gradAccum = gradAccum;
            return this;
        }

        /** Default 256. */
        public Builder maxLength(int maxLength) {
            this.maxLength = maxLength;
            return this;
        }

        /** Default 42. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** Default 0. */
        public Builder warmupSteps(long warmupSteps) {
            this.warmupSteps = warmupSteps;
            return this;
        }

        /** Default TOKENS (transformers' Trainer); MICRO_BATCHES is the plain PEFT loop's. */
        public Builder lossAveraging(LossAveraging lossAveraging) {
            this.lossAveraging = lossAveraging;
            return this;
        }

        /** Default LINEAR. */
        public Builder schedule(LrSchedule schedule) {
            this.schedule = schedule;
            return this;
        }

        /** Default 0. */
        public Builder weightDecay(double weightDecay) {
            this.weightDecay = weightDecay;
            return this;
        }

        /** Default 1.0. */
        public Builder maxGradNorm(double maxGradNorm) {
            this.maxGradNorm = maxGradNorm;
            return this;
        }

        /** Default 0.9. */
        public Builder beta1(double beta1) {
            this.beta1 = beta1;
            return this;
        }

        /** Default 0.999. */
        public Builder beta2(double beta2) {
            this.beta2 = beta2;
            return this;
        }

        /** Default 1e-8. */
        public Builder epsilon(double epsilon) {
            this.epsilon = epsilon;
            return this;
        }

        /** Default 10. */
        public Builder logEvery(int logEvery) {
            this.logEvery = logEvery;
            return this;
        }

        /** Default {@link NonFinitePolicy#STOP}. */
        public Builder onNonFinite(NonFinitePolicy onNonFinite) {
            this.onNonFinite = onNonFinite;
            return this;
        }

        /** Default 10 (with {@link NonFinitePolicy#SKIP}). */
        public Builder maxNonFinite(int maxNonFinite) {
            this.maxNonFinite = maxNonFinite;
            return this;
        }

        /** Default 0: with a dev set, evaluate once per epoch. */
        public Builder evalEvery(long evalEvery) {
            this.evalEvery = evalEvery;
            return this;
        }

        /** Default {@link DevMetric#DEV_LOSS}. */
        public Builder metric(DevMetric metric) {
            this.metric = metric;
            return this;
        }

        /** Default 0 (no early stopping). */
        public Builder patience(int patience) {
            this.patience = patience;
            return this;
        }

        /**
         * Adds a second stage with the top layers unfrozen; default none. Cannot be combined with
         * the {@code stage2*} setters, which build one field by field.
         */
        public Builder twoStage(TwoStageConfig twoStage) {
            this.twoStage = twoStage;
            return this;
        }

        /** A second stage that unfreezes the top {@code layers} layers (see {@link TwoStageConfig}). */
        public Builder stage2Layers(int layers) {
            this.stage2Layers = layers;
            return this;
        }

        /** The second stage's layer learning rate; needs {@link #stage2Layers}. */
        public Builder stage2LearningRate(double learningRate) {
            this.stage2LearningRate = learningRate;
            return this;
        }

        /** The second stage's optimizer steps; needs {@link #stage2Layers}. */
        public Builder stage2Steps(long steps) {
            this.stage2Steps = steps;
            return this;
        }

        /** The second stage's passes over the data; needs {@link #stage2Layers}. */
        public Builder stage2Epochs(int epochs) {
            this.stage2Epochs = epochs;
            return this;
        }

        /** @throws InvalidConfigException naming the first field out of range */
        public TrainingConfig build() {
            if (epochs != null && maxSteps != null) {
                throw new InvalidConfigException("maxSteps", "cannot be combined with epochs; give one"
                        + " of them (--epochs N or --max-steps N)");
            }
            if (maxSteps != null && maxSteps <= 0) {
                throw new InvalidConfigException("maxSteps", "must be > 0, got " + maxSteps);
            }
            TwoStageConfig stage2 = twoStage;
            if (stage2Layers != null) {
                if (twoStage != null) {
                    throw new InvalidConfigException("stage2Layers", "cannot be combined with twoStage(...); give"
                            + " one of them");
                }
                TwoStageConfig.Builder builder = TwoStageConfig.builder().layers(stage2Layers);
                if (stage2LearningRate != null) {
                    builder.learningRate(stage2LearningRate);
                }
                if (stage2Steps != null) {
                    builder.steps(stage2Steps);
                }
                if (stage2Epochs != null) {
                    builder.epochs(stage2Epochs);
                }
                stage2 = builder.build();
            } else if (stage2LearningRate != null || stage2Steps != null || stage2Epochs != null) {
                throw new InvalidConfigException("stage2Layers", "is needed by stage2LearningRate, stage2Steps and"
                        + " stage2Epochs (how many top layers to unfreeze in stage 2)");
            }
            double lr = learningRate != null ? learningRate
                    : stage2 != null ? TwoStageConfig.DEFAULT_PROMPT_LEARNING_RATE : 1e-2;
            return new TrainingConfig(lr, epochs == null ? 1 : epochs,
                    maxSteps == null ? 0 : maxSteps, batchSize, gradAccum, lossAveraging, maxLength, seed, warmupSteps,
                    schedule, weightDecay, maxGradNorm, beta1, beta2, epsilon, logEvery, onNonFinite,
                    maxNonFinite, evalEvery, metric, patience, stage2);
        }
    }
}
