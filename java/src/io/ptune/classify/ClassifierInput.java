package io.ptune.classify;

import java.util.Objects;

/**
 * One example as the classifier's model sees it.
 *
 * @param ids token ids, special tokens included
 * @param tokenTypes BERT's segment ids (one per token), or null for models without them
 * @param slot the text position the verbalizer heads read (the {@code [MASK]} token, or a causal
 *     LM's last input token, whose logits predict the next token); -1 for the linear head
 */
public record ClassifierInput(long[] ids, long[] tokenTypes, int slot) {
    public ClassifierInput {
        Objects.requireNonNull(ids, "ids");
        if (ids.length == 0) {
            throw new IllegalArgumentException("an input needs at least one token");
        }
        if (tokenTypes != null && tokenTypes.length != ids.length) {
            throw new IllegalArgumentException("token types: " + tokenTypes.length + " for " + ids.length + " tokens");
        }
        if (slot < -1 || slot >= ids.length) {
            throw new IllegalArgumentException("slot " + slot + " is outside the " + ids.length + " tokens");
        }
        ids = ids.clone();
        tokenTypes = tokenTypes == null ? null : tokenTypes.clone();
    }

    @Override
    public long[] ids() {
        return ids.clone();
    }

    @Override
    public long[] tokenTypes() {
        return tokenTypes == null ? null : tokenTypes.clone();
    }

    /** The number of tokens. */
    public int length() {
        return ids.length;
    }

    long[] idsView() {
        return ids;
    }

    long[] tokenTypesView() {
        return tokenTypes;
    }
}
