package io.ptune.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;

/** Checks that a chart file is a real, drawn PNG (the tests cannot look at it; a person did). */
public final class Pngs {
    private Pngs() {}

    /**
     * Asserts that {@code png} is a PNG {@code width} pixels wide and at least {@code minHeight}
     * high, that is not blank: its luminance varies, and a few percent of it is not background.
     *
     * @return the image, for further checks
     */
    public static BufferedImage assertChart(Path png, int width, int minHeight) throws IOException {
        assertTrue(Files.isRegularFile(png), png + " was not written");
        byte[] bytes = Files.readAllBytes(png);
        assertTrue(bytes.length > 8 && (bytes[0] & 0xFF) == 0x89 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G',
                png + " does not start with the PNG signature");
        BufferedImage image = ImageIO.read(png.toFile());
        assertNotNull(image, png + " is not a readable image");
        assertEquals(width, image.getWidth(), png + " width");
        assertTrue(image.getHeight() >= minHeight, png + " height " + image.getHeight() + " < " + minHeight);
        double sum = 0, sumSquares = 0;
        long inked = 0;
        long pixels = (long) image.getWidth() * image.getHeight();
        for (int y = 0; y < image.getHeight(); y++) {
            for (int x = 0; x < image.getWidth(); x++) {
                int rgb = image.getRGB(x, y);
                double luminance = 0.299 * ((rgb >> 16) & 0xFF) + 0.587 * ((rgb >> 8) & 0xFF) + 0.114 * (rgb & 0xFF);
                sum += luminance;
                sumSquares += luminance * luminance;
                if (luminance < 200) {
                    inked++;
                }
            }
        }
        double mean = sum / pixels;
        double variance = sumSquares / pixels - mean * mean;
        assertTrue(variance > 100, png + " is nearly uniform (luminance variance " + variance + ")");
        assertTrue(inked > pixels / 100, png + " has almost nothing drawn (" + inked + " dark pixels of " + pixels + ")");
        return image;
    }

    /** The number of pixels within 40 of {@code rgb} in every channel: is that colour drawn? */
    public static long pixelsNear(BufferedImage image, int rgb) {
        long count = 0;
        for (int y = 0; y < image.getHeight(); y++) {
            for (int x = 0; x < image.getWidth(); x++) {
                int p = image.getRGB(x, y);
                if (Math.abs(((p >> 16) & 0xFF) - ((rgb >> 16) & 0xFF)) < 40
                        && Math.abs(((p >> 8) & 0xFF) - ((rgb >> 8) & 0xFF)) < 40
                        && Math.abs((p & 0xFF) - (rgb & 0xFF)) < 40) {
                    count++;
                }
            }
        }
        return count;
    }
}
