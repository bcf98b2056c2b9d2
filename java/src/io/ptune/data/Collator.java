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
        int t = examples.stream().mapToInt(TokenizedExample::length).max().orElseThrow();
        Batch batch = padding(examples.size(), t);
        for (int row = 0; row < examples.size(); row++) {
            TokenizedExample example = examples.get(row);
            for (int i = 0; i < example.length(); i++) {
                put(batch, row * t + i, example.idAt(i), example.labelAt(i));
            }
        }
        return batch;
    }

    /** Left-padded batch of prompts for generation; labels are all -100. */
    public Batch leftPad(List<long[]> prompts) {
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("cannot pad an empty batch");
        }
        int t = prompts.stream().mapToInt(p -> p.length).max().orElseThrow();
        if (t == 0) {
            throw new IllegalArgumentException("every prompt is empty; give at least one token");
        }
        Batch batch = padding(prompts.size(), t);
        for (int row = 0; row < prompts.size(); row++) {
            long[] prompt = prompts.get(row);
            if (prompt.length == 0) {
                throw new IllegalArgumentException("prompt " + row + " is empty; give at least one token"
                        + " (e.g. BOS)");
            }
            int start = row * t + t - prompt.length;
            for (int i = 0; i < prompt.length; i++) {
                put(batch, start + i, prompt[i], TokenizedExample.IGNORE_INDEX);
            }
        }
        return batch;
    }

    /** A (b, t) batch of padding only: ids = pad, mask = 0, labels = -100. */
    private Batch padding(int b, int t) {
        long[] ids = new long[b * t];
        long[] labels = new long[b * t];
        Arrays.fill(ids, padTokenId);
        Arrays.fill(labels, TokenizedExample.IGNORE_INDEX);
        return new Batch(ids, new long[b * t], labels, b, t);
    }

    /** Writes a real token at flat position {@code at} of a batch being filled. */
    private static void put(Batch batch, int at, long id, long label) {
        batch.ids()[at] = id;
        batch.mask()[at] = 1;
        batch.labels()[at] = label;
    }
}
