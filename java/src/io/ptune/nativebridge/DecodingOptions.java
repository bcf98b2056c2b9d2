package io.ptune.nativebridge;

/**
 * Decoding settings passed to the native generator; {@code greedy} ignores the sampling fields.
 * Warpers apply in transformers' order: temperature, top-k, top-p.
 */
public record DecodingOptions(
        int maxNewTokens, boolean greedy, double temperature, int topK, double topP, long seed, long padTokenId) {}
