package io.ptune.data;

/**
 * A padded batch, flattened row-major for the native core.
 *
 * @param ids (B, T) token ids, padding where {@code mask} is 0
 * @param mask (B, T) 1 for real tokens, 0 for padding
 * @param labels (B, T) ids to learn, -100 where ignored (padding, prompt part)
 * @param batchSize B
 * @param seqLen T
 */
public record Batch(long[] ids, long[] mask, long[] labels, int batchSize, int seqLen) {
    public Batch {
        if (batchSize <= 0 || seqLen <= 0) {
            throw new IllegalArgumentException("batch must be non-empty, got B=" + batchSize + " T=" + seqLen);
        }
        long size = (long) batchSize * seqLen;
        if (ids.length != size || mask.length != size || labels.length != size) {
            throw new IllegalArgumentException("ids/mask/labels must all have B*T = " + size
                    + " entries, got " + ids.length + "/" + mask.length + "/" + labels.length);
        }
    }

    /** The number of positions with a label (not -100); see {@link TokenizedExample#labelTokens()}. */
    public long labelTokens() {
        long n = 0;
        for (long label : labels) {
            if (label != TokenizedExample.IGNORE_INDEX) {
                n++;
            }
        }
        return n;
    }

    /** The number of real (unpadded) tokens. */
    public long realTokens() {
        long n = 0;
        for (long m : mask) {
            n += m;
        }
        return n;
    }
}
