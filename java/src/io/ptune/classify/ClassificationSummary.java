package io.ptune.classify;

import java.time.Duration;
import java.util.List;

/**
 * The outcome of {@link ClassificationTrainer#train()}.
 *
 * @param steps optimizer steps made
 * @param firstLoss the first step's loss
 * @param lastLoss the last step's loss
 * @param examplesPerSecond training examples per second over the whole run (dev evaluation excluded)
 * @param elapsed wall time of the loop, dev evaluation included
 * @param epochs what each epoch ended with
 * @param bestEpoch the epoch of the best dev {@link io.ptune.train.TrainingConfig#metric()}, 0 without a
 *     dev set
 * @param bestDevMetric that metric's best value, NaN without a dev set
 * @param stoppedEarly whether {@link io.ptune.train.TrainingConfig#patience()} ended the run early (the
 *     classifier then holds the parameters of {@code bestEpoch})
 */
public record ClassificationSummary(long steps, double firstLoss, double lastLoss, double examplesPerSecond,
        Duration elapsed, List<EpochMetrics> epochs, int bestEpoch, double bestDevMetric, boolean stoppedEarly) {
    public ClassificationSummary {
        epochs = List.copyOf(epochs);
    }
}
