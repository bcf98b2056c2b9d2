package io.ptune.nativebridge;

/** AdamW, clipping, accumulation and schedule settings of one native training run. */
public record OptimizerOptions(
        double learningRate,
        double weightDecay,
        double beta1,
        double beta2,
        double epsilon,
        double maxGradNorm,
        int gradAccum,
        long totalSteps,
        long warmupSteps,
        LrScheduleKind schedule,
        LossAveragingKind lossAveraging) {}
