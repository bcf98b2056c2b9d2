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
 */
public record TrainingSummary(long steps, int epochs, double firstLoss, double lastLoss,
        double tokensPerSecond, Duration elapsed, long droppedCycles) {}
