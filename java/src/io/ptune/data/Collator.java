package io.ptune.data;

import java.util.Arrays;
import java.util.List;

/**
 * Pads examples into one {@link Batch}, as wide as its longest row (dynamic padding).
 *
 * <p>Training batches are padded on the right: positions are computed from the mask, so a row's
 * real tokens keep positions 0..len-1 either way, and right padding keeps the labels aligned with
 * the start. Generation batches are padded on the left, so every row's next token is written at
 * the same column.
 *
 * @param padTokenId id written into padded positions (masked, so never seen by the model)
 */
public record Collator(long padTokenId) {

    /** Right-padded training batch: ids = pad, mask = 0, labels = -100 on padding. */
    public Batch collate(List<TokenizedExample> examples) {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("cannot collate an empty batch");
        }
        int b = examples.size();
        int t = examples.stream().mapToInt(TokenizedExample::length).max().orElseThrow();
        long[] ids = new long[b * t];
        long[] mask = new long[b * t];
        long[] labels = new long[b * t];
        Arrays.fill(ids, padTokenId);
        Arrays.fill(labels, TokenizedExample.IGNORE_INDEX);
        for (int row = 0; row < b; row++) {
            TokenizedExample example = examples.get(row);
            for (int i = 0; i < example.length(); i++) {
                ids[row * t + i] = example.idAt(i);
                mask[row * t + i] = 1;
                labels[row * t + i] = example.labelAt(i);
            }
        }
        return new Batch(ids, mask, labels, b, t);
    }

    /** Left-padded batch of prompts for generation; labels are all -100. */
    public Batch leftPad(List<long[]> prompts) {
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("cannot pad an empty batch");
        }
        int b = prompts.size();
        int t = prompts.stream().mapToInt(p -> p.length).max().orElseThrow();
        if (t == 0) {
            throw new IllegalArgumentException("every prompt is empty; give at least one token");
        }
        long[] ids = new long[b * t];
        long[] mask = new long[b * t];
        long[] labels = new long[b * t];
        Arrays.fill(ids, padTokenId);
        Arrays.fill(labels, TokenizedExample.IGNORE_INDEX);
        for (int row = 0; row < b; row++) {
            long[] prompt = prompts.get(row);
            if (prompt.length == 0) {
                throw new IllegalArgumentException("prompt " + row + " is empty; give at least one token"
                        + " (e.g. BOS)");
            }
            int offset = t - prompt.length;
            for (int i = 0; i < prompt.length; i++) {
                ids[row * t + offset + i] = prompt[i];
                mask[row * t + offset + i] = 1;
            }
        }
        return new Batch(ids, mask, labels, b, t);
    }
}
