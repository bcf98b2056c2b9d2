package io.ptune.prompt;

/**
 * Something to put in front of a model for inference: fixed values ({@link SoftPrompt}) or the
 * parameters of any prompt method held by the native core ({@link PromptModule}).
 * {@code CausalLm.logits} and {@code Generator} take either; null means the bare model.
 */
public sealed interface Prompt permits SoftPrompt, PromptModule {}
