package io.ptune.inspect;

import io.ptune.model.Model;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Vectors against a model's input embedding table: for each, the k vocabulary tokens of highest
 * cosine similarity (the interpretability view of Lester et al. 2021), and the table's mean L2
 * norm. The table is read in chunks of rows through {@link Model#embed}, so a 150k × 4096 table
 * never sits in Java memory whole.
 */
final class NearestTokens {
    /** Floats of the table read per chunk (16 MB). */
    private static final int CHUNK_FLOATS = 4 << 20;

    /** One vocabulary token near a vector. */
    record Match(long id, double cosine) {}

    /**
     * @param nearest {@code nearest.get(i)}: the k best matches of vector i, best first (ties: the
     *     smaller id first)
     * @param vocabMeanNorm the mean L2 norm of the table's rows
     */
    record Result(List<List<Match>> nearest, double vocabMeanNorm) {}

    private NearestTokens() {}

    /**
     * @param vectors {@code (n, C)} row-major, C the model's hidden size
     * @param k how many tokens per vector (at most the vocabulary size)
     */
    static Result find(Model model, float[] vectors, int n, int k) {
        int dim = model.architecture().hiddenSize();
        int vocab = model.architecture().vocabSize();
        if (vectors.length != (long) n * dim) {
            throw new IllegalArgumentException(n + " vectors of width " + dim + " need " + (long) n * dim
                    + " values, got " + vectors.length);
        }
        int keep = Math.min(k, vocab);
        double[] vectorNorms = new double[n];
        for (int i = 0; i < n; i++) {
            vectorNorms[i] = norm(vectors, i * dim, dim);
        }
        Comparator<Match> worstFirst = Comparator.comparingDouble(Match::cosine)
                .thenComparing(Comparator.comparingLong(Match::id).reversed());
        List<PriorityQueue<Match>> best = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            best.add(new PriorityQueue<>(worstFirst));
        }
        double normSum = 0;
        int chunk = Math.max(1, Math.min(vocab, CHUNK_FLOATS / dim));
        for (int start = 0; start < vocab; start += chunk) {
            int rows = Math.min(chunk, vocab - start);
            long[] ids = new long[rows];
            for (int r = 0; r < rows; r++) {
                ids[r] = start + r;
            }
            float[] table = model.embed(ids); // (rows, C)
            for (int r = 0; r < rows; r++) {
                double rowNorm = norm(table, r * dim, dim);
                normSum += rowNorm;
                for (int i = 0; i < n; i++) {
                    double dot = 0;
                    for (int c = 0; c < dim; c++) {
                        dot += (double) vectors[i * dim + c] * table[r * dim + c];
                    }
                    double denominator = vectorNorms[i] * rowNorm;
                    Match match = new Match(start + r, denominator == 0 ? 0 : dot / denominator);
                    PriorityQueue<Match> queue = best.get(i);
                    if (queue.size() < keep) {
                        queue.add(match);
                    } else if (worstFirst.compare(match, queue.peek()) > 0) {
                        queue.poll();
                        queue.add(match);
                    }
                }
            }
        }
        List<List<Match>> nearest = new ArrayList<>();
        for (PriorityQueue<Match> queue : best) {
            List<Match> sorted = new ArrayList<>(queue);
            sorted.sort(worstFirst.reversed());
            nearest.add(List.copyOf(sorted));
        }
        return new Result(nearest, normSum / vocab);
    }

    static double norm(float[] values, int offset, int length) {
        double sum = 0;
        for (int c = 0; c < length; c++) {
            sum += (double) values[offset + c] * values[offset + c];
        }
        return Math.sqrt(sum);
    }
}
