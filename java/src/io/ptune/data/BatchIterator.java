package io.ptune.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Random;

/**
 * The batches of one epoch: the examples in an order shuffled by {@code (seed, epoch)}, cut into
 * batches of {@code batchSize} (the last one may be smaller), each padded by a {@link Collator}.
 *
 * <p>The order depends only on the seed and the epoch number, so a run is reproducible and a
 * resumed run can rebuild any epoch without replaying the ones before it.
 */
public final class BatchIterator implements Iterator<Batch> {
    private final List<TokenizedExample> order;
    private final int batchSize;
    private final Collator collator;
    private final int epoch;
    private int next;

    /**
     * @param shuffle false keeps file order (evaluation)
     */
    public BatchIterator(List<TokenizedExample> examples, int batchSize, Collator collator, long seed,
            int epoch, boolean shuffle) {
        if (batchSize <= 0) {
            throw new IllegalArgumentException("batchSize must be > 0, got " + batchSize);
        }
        this.order = new ArrayList<>(examples);
        if (shuffle) {
            Collections.shuffle(order, new Random(epochSeed(seed, epoch)));
        }
        this.batchSize = batchSize;
        this.collator = collator;
        this.epoch = epoch;
    }

    /** The number of batches an epoch of {@code examples} examples has. */
    public static long batchesPerEpoch(long examples, int batchSize) {
        return (examples + batchSize - 1) / batchSize;
    }

    /** Mixes the epoch into the seed so that epochs get unrelated orders. */
    public static long epochSeed(long seed, int epoch) {
        return seed * 0x9E3779B97F4A7C15L + epoch;
    }

    @Override
    public boolean hasNext() {
        return next < order.size();
    }

    @Override
    public Batch next() {
        if (!hasNext()) {
            throw new NoSuchElementException();
        }
        int end = Math.min(next + batchSize, order.size());
        Batch batch = collator.collate(order.subList(next, end));
        next = end;
        return batch;
    }

    /** The epoch whose order this is. */
    public int epoch() {
        return epoch;
    }

    /** How many batches have been served (or skipped) so far. */
    public long served() {
        return (next + batchSize - 1) / batchSize;
    }

    /** Passes over the next {@code batches} batches without padding them (a resumed run). */
    public void skip(long batches) {
        if (batches < 0) {
            throw new IllegalArgumentException("cannot skip " + batches + " batches");
        }
        next = (int) Math.min(order.size(), next + batches * batchSize);
    }

    /** The examples of this epoch in the order they are served. */
    public List<TokenizedExample> order() {
        return Collections.unmodifiableList(order);
    }
}
