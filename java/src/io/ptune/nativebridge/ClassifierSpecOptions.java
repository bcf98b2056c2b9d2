package io.ptune.nativebridge;

/**
 * Shape of a native classification head (ptune::ClassifierSpec).
 *
 * @param head the kind of head
 * @param numClasses K >= 2
 * @param pooling what the linear head reads
 * @param headBias linear head: "classifier.weight" + "classifier.bias" (BERT's naming), else
 *     "score.weight" (decoders' *ForSequenceClassification, no bias)
 * @param multiToken how a verbalizer scores a label word of several tokens
 * @param seed initialisation of the linear head
 */
public record ClassifierSpecOptions(Head head, int numClasses, Pooling pooling, boolean headBias,
        MultiToken multiToken, long seed) {

    /** In the order of ptune::ClassifierHead. */
    public enum Head {
        LINEAR,
        VERBALIZER,
        SOFT_VERBALIZER
    }

    /** In the order of ptune::Pooling. */
    public enum Pooling {
        CLS,
        FIRST_TEXT,
        MEAN,
        LAST
    }

    /** In the order of ptune::MultiToken. */
    public enum MultiToken {
        FIRST,
        MEAN,
        MAX
    }
}
