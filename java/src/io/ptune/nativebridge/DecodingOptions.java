package io.ptune.nativebridge;

/**
 * Decoding settings passed to the native generator; {@code greedy} ignores the sampling fields.
 * Warpers apply in transformers' order: temperature, top-k, top-p.
 */
public record DecodingOptions(
        int maxNewTokens, boolean greedy, double temperature, int topK, double topP, long seed, long padTokenId) {
    /** Writes these settings into the native struct {@code o}; returns it. */
    PtuneNative.GenerateOptions copyTo(PtuneNative.GenerateOptions o) {
        return o.max_new_tokens(maxNewTokens)
                .greedy(greedy)
                .temperature(temperature)
                .top_k(topK)
                .top_p(topP)
                .seed(seed)
                .pad_token_id(padTokenId);
    }
}
