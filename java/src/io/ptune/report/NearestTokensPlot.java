package io.ptune.report;

import java.awt.Color;
import java.awt.Font;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import org.knowm.xchart.AnnotationText;
import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.HeatMapChartBuilder;
import org.knowm.xchart.style.HeatMapStyler;

/**
 * The interpretability view of a soft prompt (Lester et al. 2021) as a PNG heat map, drawn by
 * XChart: one row per virtual token (the first at the top), one column per rank of its nearest
 * vocabulary tokens, each cell coloured by the cosine similarity and labelled with the token and
 * the cosine. {@value Charts#WIDTH} px wide; the height grows with the number of virtual tokens.
 */
public final class NearestTokensPlot {
    /** Longest token string shown in a cell. */
    static final int MAX_TOKEN = 12;

    /** Light to mid orange: the black cell text stays readable everywhere. */
    private static final Color[] SCALE = {new Color(0xFFFFFF), new Color(0xFDD0A2), new Color(0xFD8D3C)};

    private NearestTokensPlot() {}

    /**
     * Draws the heat map and writes the PNG to {@code png} (atomically, creating its folder).
     *
     * @param tokens {@code tokens.get(i).get(r)}: the r-th nearest token of virtual token i (as
     *     the tokenizer spells it)
     * @param cosines {@code cosines[i][r]}: its cosine similarity, in [-1, 1]
     * @throws IllegalArgumentException if the rows or ranks of the two disagree, or there are none
     * @throws io.ptune.PtuneException naming the file when it cannot be written
     */
    public static void write(Path png, String title, List<List<String>> tokens, double[][] cosines) {
        Charts.writePng(chart(title, tokens, cosines), png);
    }

    /** The chart {@link #write} draws. */
    static HeatMapChart chart(String title, List<List<String>> tokens, double[][] cosines) {
        Objects.requireNonNull(tokens, "tokens");
        int n = tokens.size();
        if (n == 0 || cosines.length != n) {
            throw new IllegalArgumentException("need the same number (> 0) of token rows and cosine rows, got "
                    + n + " and " + cosines.length);
        }
        int k = tokens.get(0).size();
        for (int i = 0; i < n; i++) {
            if (tokens.get(i).size() != k || cosines[i].length != k || k == 0) {
                throw new IllegalArgumentException("virtual token " + i + " has " + tokens.get(i).size()
                        + " tokens and " + cosines[i].length + " cosines; every row needs the same k > 0");
            }
        }
        HeatMapChart chart = new HeatMapChartBuilder().width(Charts.WIDTH).height(Math.max(300, 140 + 34 * n)).title(title)
                .xAxisTitle("rank of the nearest vocabulary token (cosine similarity)")
                .yAxisTitle("virtual token").build();
        HeatMapStyler styler = chart.getStyler();
        Charts.style(styler);
        // Every cell prints its cosine: the colour scale would only take width from the cells.
        styler.setLegendVisible(false);
        styler.setPlotGridLinesVisible(false);
        styler.setRangeColors(SCALE);
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        for (double[] row : cosines) {
            for (double c : row) {
                min = Math.min(min, c);
                max = Math.max(max, c);
            }
        }
        styler.setMin(Math.min(0, min));
        styler.setMax(Math.max(max, Math.min(0, min) + 1e-6));
        styler.setShowValue(false);
        styler.setDrawBorder(true);
        styler.setAnnotationTextFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        styler.setAnnotationTextFontColor(Color.BLACK);

        List<Integer> ranks = new ArrayList<>();
        for (int r = 1; r <= k; r++) {
            ranks.add(r);
        }
        // Numeric categories, the first virtual token at the top: rows are listed bottom-up.
        List<Integer> rows = new ArrayList<>();
        for (int j = 0; j < n; j++) {
            rows.add(n - 1 - j);
        }
        List<Number[]> cells = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int j = n - 1 - i;
            for (int r = 0; r < k; r++) {
                cells.add(new Number[] {r, j, cosines[i][r]});
                // XChart maps an annotation's data coordinates linearly from the categories' smallest
                // to largest value onto the span of the cells, so a cell's centre is at (index + 0.5)
                // cells along it (a single category maps to the middle).
                double x = 1 + (k - 1) * (r + 0.5) / k;
                double y = (n - 1) * (j + 0.5) / n;
                chart.addAnnotation(new AnnotationText(cellText(tokens.get(i).get(r), cosines[i][r]), x, y, false));
            }
        }
        chart.addSeries("cosine", ranks, rows, cells);
        return chart;
    }

    /**
     * "token 0.83": the token {@linkplain #visible made visible}, cut to {@value #MAX_TOKEN}
     * characters.
     */
    static String cellText(String token, double cosine) {
        String s = visible(token);
        if (s.codePointCount(0, s.length()) > MAX_TOKEN) {
            s = s.substring(0, s.offsetByCodePoints(0, MAX_TOKEN - 1)) + "…";
        }
        return s + "  " + String.format(Locale.ROOT, "%.2f", cosine);
    }

    /**
     * A token string that shows on screen: control characters as {@code \x0a}, other
     * invisible spaces (no-break, hair, zero-width, …) as {@code \u00a0}, a token of plain
     * spaces as "␣".
     */
    public static String visible(String token) {
        StringBuilder shown = new StringBuilder();
        token.codePoints().forEach(c -> {
            if (Character.isISOControl(c)) {
                shown.append(String.format(Locale.ROOT, "\\x%02x", c));
            } else if (c != ' ' && (Character.isSpaceChar(c) || Character.isWhitespace(c)
                    || Character.getType(c) == Character.FORMAT)) {
                shown.append(String.format(Locale.ROOT, "\\u%04x", c));
            } else {
                shown.appendCodePoint(c);
            }
        });
        String s = shown.toString();
        return !s.isEmpty() && s.isBlank() ? s.replace(' ', '␣') : s;
    }
}
