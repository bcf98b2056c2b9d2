package io.ptune.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * Accuracy, macro-F1 and per-class precision / recall / F1 / support of predictions against gold
 * labels, and the confusion matrix ({@code confusion[gold][predicted]}). A class that is never
 * predicted has precision 0 (and so F1 0), as scikit-learn reports it with zero_division=0.
 *
 * @param labels the classes, in index order
 * @param confusion counts, {@code [gold][predicted]}
 */
public record ClassificationMetrics(List<String> labels, long[][] confusion) {

    /** One class's scores. */
    public record PerClass(String label, double precision, double recall, double f1, long support) {}

    public ClassificationMetrics {
        labels = List.copyOf(labels);
        Objects.requireNonNull(confusion, "confusion");
        if (confusion.length != labels.size()) {
            throw new IllegalArgumentException("confusion has " + confusion.length + " rows for " + labels.size()
                    + " labels");
        }
    }

    /** Metrics of {@code predicted} against {@code gold} (class indices into {@code labels}). */
    public static ClassificationMetrics of(List<String> labels, int[] gold, int[] predicted) {
        if (gold.length != predicted.length) {
            throw new IllegalArgumentException(gold.length + " gold labels but " + predicted.length + " predictions");
        }
        int k = labels.size();
        long[][] confusion = new long[k][k];
        for (int i = 0; i < gold.length; i++) {
            if (gold[i] < 0 || gold[i] >= k || predicted[i] < 0 || predicted[i] >= k) {
                throw new IllegalArgumentException("class index out of [0, " + k + ") at " + i);
            }
            confusion[gold[i]][predicted[i]]++;
        }
        return new ClassificationMetrics(labels, confusion);
    }

    public long total() {
        long n = 0;
        for (long[] row : confusion) {
            for (long c : row) {
                n += c;
            }
        }
        return n;
    }

    public double accuracy() {
        long correct = 0;
        for (int c = 0; c < confusion.length; c++) {
            correct += confusion[c][c];
        }
        return total() == 0 ? 0 : (double) correct / total();
    }

    public List<PerClass> perClass() {
        List<PerClass> out = new ArrayList<>();
        for (int c = 0; c < labels.size(); c++) {
            long truePositive = confusion[c][c], support = 0, predicted = 0;
            for (int j = 0; j < labels.size(); j++) {
                support += confusion[c][j];
                predicted += confusion[j][c];
            }
            double precision = predicted == 0 ? 0 : (double) truePositive / predicted;
            double recall = support == 0 ? 0 : (double) truePositive / support;
            double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            out.add(new PerClass(labels.get(c), precision, recall, f1, support));
        }
        return out;
    }

    /** The unweighted mean of the classes' F1. */
    public double macroF1() {
        return perClass().stream().mapToDouble(PerClass::f1).average().orElse(0);
    }

    /** A readable table: accuracy, macro-F1, per-class scores, the confusion matrix. */
    public String table() {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "accuracy %.4f  macro-F1 %.4f  (%d examples)%n", accuracy(), macroF1(),
                total()));
        int width = Math.max(8, labels.stream().mapToInt(String::length).max().orElse(5) + 2);
        out.append(String.format(Locale.ROOT, "%-" + width + "s %9s %9s %9s %9s%n", "label", "precision", "recall",
                "f1", "support"));
        for (PerClass c : perClass()) {
            out.append(String.format(Locale.ROOT, "%-" + width + "s %9.4f %9.4f %9.4f %9d%n", c.label(), c.precision(),
                    c.recall(), c.f1(), c.support()));
        }
        out.append("confusion (rows: gold, columns: predicted)").append(System.lineSeparator());
        out.append(String.format(Locale.ROOT, "%-" + width + "s", ""));
        for (String label : labels) {
            out.append(String.format(Locale.ROOT, " %" + width + "s", label));
        }
        out.append(System.lineSeparator());
        for (int g = 0; g < labels.size(); g++) {
            out.append(String.format(Locale.ROOT, "%-" + width + "s", labels.get(g)));
            for (int p = 0; p < labels.size(); p++) {
                out.append(String.format(Locale.ROOT, " %" + width + "d", confusion[g][p]));
            }
            out.append(System.lineSeparator());
        }
        return out.toString();
    }
}
