package io.ptune.nativebridge;

/**
 * What one native micro-batch call did. {@code gradNorm} and {@code learningRate} are meaningful
 * only when {@code optimizerStepped}.
 */
public record MicroStepResult(
        double loss, long labelTokens, boolean optimizerStepped, double gradNorm, double learningRate, long optimizerStep) {}
