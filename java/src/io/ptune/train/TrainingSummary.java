package io.ptune.train;

import java.time.Duration;

/**
 * The outcome of {@link Trainer#train()}.
 *
 * @param steps optimizer steps made
 * @param epochs epochs begun (the last may be partial when maxSteps ends the run)
 * @param firstLoss the first step's loss
 * @param lastLoss the last step's loss
 * @param tokensPerSecond real input tokens per second over the whole run
 * @param elapsed wall time of the loop
 * @param droppedCycles accumulation cycles dropped for a NaN or infinite loss or gradient
 *     ({@link NonFinitePolicy#SKIP}; 0 otherwise)
 * @param bestStep the step of the best dev evaluation, 0 without a dev set
 * @param bestDevMetric the {@link TrainingConfig#metric()} at {@code bestStep}, NaN without a dev set
 * @param lastDevMetric the metric at the last evaluation, NaN without a dev set
 * @param stoppedEarly whether {@link TrainingConfig#patience()} ended the run before its last step
 */
public record TrainingSummary(long steps, int epochs, double firstLoss, double lastLoss,
        double tokensPerSecond, Duration elapsed, long droppedCycles, long bestStep, double bestDevMetric,
        double lastDevMetric, boolean stoppedEarly) {

    /**
     * The dev metric of the prompt the trainer ends with: the best with early stopping
     * ({@link TrainingConfig#patience()} &gt; 0), else the last; NaN without a dev set.
     */
    public double keptDevMetric(TrainingConfig config) {
        return config.patience() > 0 ? bestDevMetric : lastDevMetric;
    }
}
