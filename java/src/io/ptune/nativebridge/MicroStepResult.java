package io.ptune.nativebridge;

/**
 * What one native micro-batch call did. {@code gradNorm} and {@code learningRate} are meaningful
 * only when {@code optimizerStepped}. {@code cycleDropped}: this micro-batch's loss, or the
 * completed cycle's gradient norm, was NaN or infinite, so the native trainer discarded the
 * accumulation cycle (no optimizer step; parameters and AdamW moments unchanged).
 */
public record MicroStepResult(double loss, long labelTokens, boolean optimizerStepped, double gradNorm,
        double learningRate, long optimizerStep, boolean cycleDropped) {}
