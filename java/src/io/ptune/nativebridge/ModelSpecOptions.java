package io.ptune.nativebridge;

/**
 * The native core's flat, family-tagged model spec (ptune::ModelSpec); fields another family does
 * not use are ignored. The model package fills it from config.json (io.ptune.model.Architecture).
 *
 * @param family the model family
 * @param vocabSize V
 * @param hiddenSize C
 * @param intermediateSize MLP width
 * @param numLayers transformer layers
 * @param numHeads query heads
 * @param numKvHeads key/value heads (= numHeads but for grouped-query Llama-family models)
 * @param headDim width of one head
 * @param maxPositions the longest sequence with positions; 0 for none (ALiBi)
 * @param normEps RMSNorm / LayerNorm epsilon
 * @param activation the MLP's activation
 * @param tieWordEmbeddings whether the LM head reuses the embedding table
 * @param rope Llama-family rotary settings (ignored by the other families)
 * @param attentionBias Llama family: q/k/v(/o) biases required
 * @param mlpBias Llama family: MLP biases required
 * @param slidingWindow Llama family: window of the windowed layers, 0 for none
 * @param firstWindowLayer Llama family: the first windowed layer
 * @param typeVocabSize BERT: rows of the token-type table
 */
public record ModelSpecOptions(
        Family family,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int maxPositions,
        double normEps,
        Activation activation,
        boolean tieWordEmbeddings,
        Rope rope,
        boolean attentionBias,
        boolean mlpBias,
        int slidingWindow,
        int firstWindowLayer,
        int typeVocabSize) {

    /** Native family ids, in the order of ptune::ModelFamily. */
    public enum Family {
        LLAMA,
        GPT2,
        BLOOM,
        BERT
    }

    /** Native activation ids, in the order of ptune::Activation. */
    public enum Activation {
        SILU,
        GELU_EXACT,
        GELU_TANH,
        GELU_BLOOM,
        RELU
    }

    /**
     * Rotary embedding settings, as transformers' rope init functions take them.
     *
     * @param theta base of the frequencies
     * @param type rope_type, in the order of ptune::RopeType (0 default, 1 linear, 2 llama3)
     * @param factor linear / llama3 factor
     * @param lowFreqFactor llama3 low_freq_factor
     * @param highFreqFactor llama3 high_freq_factor
     * @param originalMaxPosition llama3 original_max_position_embeddings
     */
    public record Rope(double theta, int type, double factor, double lowFreqFactor, double highFreqFactor,
            int originalMaxPosition) {
        /** No rotary embeddings (families with learned positions or ALiBi). */
        public static final Rope NONE = new Rope(10000.0, 0, 1.0, 0, 0, 0);
    }
}
