package io.ptune.classify;

/**
 * The end of one pass over the training data.
 *
 * @param epoch 1-based
 * @param step optimizer steps made so far
 * @param trainLoss mean loss of the epoch's optimizer steps
 * @param dev metrics on the dev set, or null without one
 */
public record EpochMetrics(int epoch, long step, double trainLoss, PromptClassifier.Evaluation dev) {}
