package io.ptune.data;

import java.util.Arrays;

/**
 * One example as token ids, before batching.
 *
 * @param ids (T) token ids: template prompt, then the answer and EOS
 * @param labels (T) the ids to learn at each position, -100 where nothing is learned (the prompt
 *     part). Not shifted: the native loss shifts them (logits at i predict labels at i+1).
 */
public record TokenizedExample(long[] ids, long[] labels) {
    /** The label value the loss ignores, as in PyTorch's cross-entropy. */
    public static final long IGNORE_INDEX = -100;

    public TokenizedExample {
        if (ids.length == 0) {
            throw new IllegalArgumentException("an example needs at least one token");
        }
        if (labels.length != ids.length) {
            throw new IllegalArgumentException("labels has " + labels.length + " entries, ids " + ids.length);
        }
        ids = ids.clone();
        labels = labels.clone();
    }

    @Override
    public long[] ids() {
        return ids.clone();
    }

    @Override
    public long[] labels() {
        return labels.clone();
    }

    public int length() {
        return ids.length;
    }

    /**
     * Positions with a label (not -100). Behind a soft prompt every one of them is predicted (the
     * last virtual token predicts position 0); without one, position 0's label never is.
     */
    public int labelTokens() {
        int n = 0;
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] != IGNORE_INDEX) {
                n++;
            }
        }
        return n;
    }

    long idAt(int i) {
        return ids[i];
    }

    long labelAt(int i) {
        return labels[i];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenizedExample t && Arrays.equals(ids, t.ids) && Arrays.equals(labels, t.labels);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(ids) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "TokenizedExample[ids=" + Arrays.toString(ids) + ", labels=" + Arrays.toString(labels) + "]";
    }
}
