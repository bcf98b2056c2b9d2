package io.ptune.report;

import io.ptune.PtuneException;
import io.ptune.internal.FileTrees;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.AxesChartStyler;

/**
 * What every ptune chart shares: headless AWT, one look (sizes, fonts, palette) and an atomic PNG
 * write. Charts are drawn by XChart; nothing here draws pixels itself.
 */
final class Charts {
    /** Width of every chart, in pixels: readable as it is in a README or a terminal image viewer. */
    static final int WIDTH = 800;
    /** Height of the line charts. */
    static final int HEIGHT = 500;

    /** Tableau 10 (the default of matplotlib): distinguishable, also in grey-scale print. */
    static final Color[] PALETTE = {new Color(0x1F77B4), new Color(0xFF7F0E), new Color(0x2CA02C),
        new Color(0xD62728), new Color(0x9467BD), new Color(0x8C564B), new Color(0xE377C2), new Color(0x7F7F7F),
        new Color(0xBCBD22), new Color(0x17BECF)};

    /** The colour of a faint (context) series, e.g. raw loss behind its smoothed curve. */
    static final Color FAINT = new Color(0xB8C4D0);

    static final BasicStroke THIN = new BasicStroke(1.0f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND);
    static final BasicStroke NORMAL = new BasicStroke(2.2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND);

    static {
        // Charts are drawn off-screen, also on machines without a display; set before AWT loads.
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }

    private Charts() {}

    /** Fonts, colours and padding of an axes chart (title 18 pt, axis titles 15, ticks and legend 13). */
    static void style(AxesChartStyler styler) {
        styler.setChartBackgroundColor(Color.WHITE);
        styler.setPlotBackgroundColor(Color.WHITE);
        styler.setPlotBorderColor(new Color(0x999999));
        styler.setPlotGridLinesColor(new Color(0xE4E4E4));
        styler.setChartFontColor(Color.BLACK);
        styler.setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 18));
        styler.setChartTitleBoxVisible(false);
        styler.setAxisTitleFont(new Font(Font.SANS_SERIF, Font.PLAIN, 15));
        styler.setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        styler.setAxisTickLabelsColor(new Color(0x333333));
        styler.setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        styler.setLegendBorderColor(new Color(0xCCCCCC));
        styler.setChartPadding(12);
        styler.setAxisTitlePadding(8);
        styler.setPlotMargin(6);
        styler.setAntiAlias(true);
        styler.setToolTipsEnabled(false);
    }

    /**
     * Writes {@code chart} as a PNG to {@code png} atomically (a temporary file beside it, then a
     * rename), creating the parent folders.
     *
     * @throws PtuneException naming the file when it cannot be written
     */
    static void writePng(Chart<?, ?> chart, Path png) {
        Path target = png.toAbsolutePath().normalize();
        Path temp = null;
        try {
            byte[] bytes = BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG);
            Files.createDirectories(target.getParent());
            // Not createTempFile: its owner-only permissions would stay on the chart.
            temp = target.resolveSibling("." + target.getFileName() + ".tmp-" + ProcessHandle.current().pid());
            Files.write(temp, bytes);
            FileTrees.moveAtomically(temp, target);
            temp = null;
        } catch (IOException e) {
            throw new PtuneException("cannot write the chart " + png + ": " + FileTrees.describe(e)
                    + "; choose a folder you can write to, or free space", e);
        } finally {
            if (temp != null) {
                FileTrees.deleteOrWarn(temp);
            }
        }
    }
}
