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
 * @param droppedCycles accumulation cycles dropped so far in the run for a NaN or infinite loss or
 *     gradient ({@link NonFinitePolicy#SKIP})
 */
public record StepMetrics(long step, long totalSteps, double loss, double learningRate,
        double tokensPerSecond, double gradNorm, long labelTokens, long droppedCycles) {

    /** A step of a run that dropped no cycle. */
    public StepMetrics(long step, long totalSteps, double loss, double learningRate, double tokensPerSecond,
            double gradNorm, long labelTokens) {
        this(step, totalSteps, loss, learningRate, tokensPerSecond, gradNorm, labelTokens, 0);
    }
}
