package io.ptune.train;

/**
 * What one optimizer step did.
 *
 * @param step the optimizer step, 1-based
 * @param totalSteps the number of steps the run will make
 * @param loss mean of the step's micro-batch losses (each the mean over its label tokens)
 * @param learningRate the learning rate the step used
 * @param tokensPerSecond real (unpadded) input tokens processed per second during the step
 * @param gradNorm the global gradient norm before clipping
 * @param labelTokens label tokens the step learned from
 */
public record StepMetrics(long step, long totalSteps, double loss, double learningRate,
        double tokensPerSecond, double gradNorm, long labelTokens) {}
